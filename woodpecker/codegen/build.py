"""Scheduled tasks -> one TVM Executable with one function per task (named after the task).

Each task is scheduled with its chosen knobs; if those knobs do not give a legal schedule (TVM's ScheduleError)
the task falls back to its family's default knobs, then to the unscheduled loop nest, so that a compile always
produces a correct library. Any other error in a template propagates: it is a bug, not a knob that does not
apply. Which schedule each task got is returned with the library.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from woodpecker.errors import BuildError
from woodpecker.lowering.model import Task
from woodpecker.schedule.apply import default_knobs, prim_func, schedule
from woodpecker.schedule.errors import not_applicable

log = logging.getLogger("woodpecker.codegen")


@dataclasses.dataclass(frozen=True)
class ScheduledTask:
    task: Task
    knobs: Mapping[str, int | str]
    origin: str  # "tuned" | "default" | "unscheduled"


def schedule_with_fallback(task: Task, knobs: Mapping[str, int | str] | None, origin: str, target_class: str = "cpu"):
    """(IRModule, ScheduledTask) for the first schedule that applies: given knobs, defaults, no schedule."""
    import tvm

    attempts = []
    if knobs is not None:
        attempts.append((dict(knobs), origin))
    attempts.append((default_knobs(task, target_class), "default"))
    for k, how in attempts:
        try:
            return schedule(task, k, target_class), ScheduledTask(task, k, how)
        except not_applicable() as err:  # illegal knobs for this shape; any other error is a template bug
            log.warning("task %s: %s schedule failed (%s); trying the next", task.name, how, str(err).splitlines()[0])
    func = prim_func(task).with_attr("global_symbol", task.name)
    return tvm.IRModule({task.name: func}), ScheduledTask(task, {}, "unscheduled")


def build_library(modules: Mapping[str, object], target) -> object:
    """Compile several single-function IRModules into one Executable."""
    import tvm

    funcs = {}
    for name, mod in modules.items():
        funcs[name] = mod[name]  # type: ignore[index]
    merged = tvm.IRModule(funcs)
    try:
        return tvm.compile(merged, target=target)
    except Exception as err:
        raise BuildError(f"TVM failed to build the model's kernels: {str(err).splitlines()[0]}") from err


def build_tasks(tasks: Mapping[str, Task], knobs: Mapping[str, Mapping[str, int | str]], target, target_class: str = "cpu"):
    """Returns (executable, {task key: ScheduledTask})."""
    modules = {}
    chosen = {}
    for key, task in tasks.items():
        mod, st = schedule_with_fallback(task, knobs.get(key), "tuned", target_class)
        modules[task.name] = mod
        chosen[key] = st
    return build_library(modules, target), chosen
