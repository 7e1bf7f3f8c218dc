"""Task + knobs -> scheduled TIR module. The single entry point the builder, the tuner and the tests use."""

from __future__ import annotations

from collections.abc import Mapping

from woodpecker.dsl.library import Library, default_library
from woodpecker.dsl.lower_te import to_prim_func
from woodpecker.lowering.model import Task
from woodpecker.schedule import cpu, cpu_defaults, gpu
from woodpecker.schedule.structure import analyze

_DEBUG = False  # render schedule errors in full (slow); for debugging schedule templates


def prim_func(task: Task, lib: Library | None = None):
    lib = lib or default_library()
    return to_prim_func(task.kernel, lib.fns)


def default_knobs(task: Task, target_class: str = "cpu") -> dict[str, int | str]:
    if target_class == "gpu":
        return gpu.default_knobs(task.family, analyze(task.kernel), task.kernel)
    return cpu_defaults.default_knobs(task.family, analyze(task.kernel))


def schedule(task: Task, knobs: Mapping[str, int | str] | None = None, target_class: str = "cpu", lib: Library | None = None):
    """Returns an IRModule with one PrimFunc named after the task, scheduled with `knobs` (defaults if None).

    Raises tvm.s_tir.schedule.ScheduleError when the knobs describe an illegal schedule (see schedule.errors).
    """
    import tvm
    from tvm import s_tir

    func = prim_func(task, lib).with_attr("global_symbol", task.name)
    mod = tvm.IRModule({task.name: func})
    st = analyze(task.kernel)
    knobs = dict(default_knobs(task, target_class) if knobs is None else knobs)
    sch = s_tir.Schedule(mod, error_render_level="none" if not _DEBUG else "detail")
    sch.work_on(task.name)
    if target_class == "gpu":
        gpu.apply(sch, task.family, st, knobs)
    else:
        cpu.apply(sch, task.family, st, knobs)
    return sch.mod
