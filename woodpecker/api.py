"""Public API: `compile` a model for a target, `load` a saved artifact. The stable entry points of woodpecker."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker import __version__
from woodpecker.ir.graph import Graph
from woodpecker.runtime.compiled import CompiledModel, KernelInfo
from woodpecker.runtime.executor import CallSpec, Program, TensorSpec


def as_onnx(model: Any, example_inputs: Any = None) -> Any:
    """A torch.nn.Module becomes an onnx.ModelProto (exported with example_inputs); other models pass through."""
    if not isinstance(model, (str, os.PathLike)) and type(model).__name__ != "ModelProto":
        from woodpecker.frontend.torch import export_torch, is_torch_module

        if is_torch_module(model):
            if example_inputs is None:
                from woodpecker.errors import ModelLoadError

                raise ModelLoadError(f"compiling {type(model).__name__} needs example_inputs=(tensor, ...)")
            return export_torch(model, example_inputs)
    return model


def import_model(model: Any, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 example_inputs: Any = None) -> Graph:
    """ONNX file path, onnx.ModelProto, or torch.nn.Module (with example_inputs) -> Graph."""
    from woodpecker.frontend.onnx import import_onnx

    return import_onnx(as_onnx(model, example_inputs), input_shapes)


def make_program(lowered) -> tuple[Program, dict[str, np.ndarray]]:
    from woodpecker.lowering.model import KernelCall

    graph = lowered.graph
    calls, views, view_steps = [], [], []
    used: set[str] = set()
    for step in lowered.steps:
        if isinstance(step, KernelCall):
            task = lowered.tasks[step.task]
            calls.append(CallSpec(task.name, tuple(zip(step.args, task.param_shapes))))
            used.update(step.args)
        else:
            views.append((step.src, step.dst))
            view_steps.append(len(calls))
            used.update((step.src, step.dst))
    used.update(graph.inputs)
    used.update(graph.outputs)
    constants = {v: graph.constants[v] for v in used if v in graph.constants}
    values = {v: (graph.types[v].shape, graph.types[v].dtype) for v in used if v not in graph.constants}
    names = graph.output_names or graph.outputs
    program = Program(
        inputs=tuple(TensorSpec(v, graph.types[v].shape, graph.types[v].dtype) for v in graph.inputs),
        outputs=tuple(TensorSpec(n, graph.types[v].shape, graph.types[v].dtype) for n, v in zip(names, graph.outputs)),
        output_values=tuple(graph.outputs),
        values=values,
        calls=tuple(calls),
        views=tuple(views),
        view_steps=tuple(view_steps),
    )
    return program, constants


def compile(  # noqa: A001 (the public name users expect)
    model: Any,
    target: str = "host",
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    example_inputs: Any = None,
    db: Any = None,
    trials: int | None = None,
    searcher: str = "ga",
    vendor: bool | None = None,
    blocked_layout: bool | None = None,
    progress: bool | Callable[[str], None] = False,
) -> CompiledModel:
    """Compile a model for a target.

    Args:
        model: path to an .onnx file, an onnx.ModelProto, or a torch.nn.Module (then pass example_inputs).
        target: hardware profile id or alias (`woodpecker targets` lists them).
        input_shapes: static shapes for inputs whose ONNX shape is symbolic, e.g. {"input": [1, 3, 224, 224]}.
        db: tuning records database (path or RecordsDatabase); the best record of each kernel for this device and
            toolchain is applied, other kernels use their default schedule.
        trials: tune first, with this many measurements (records go to `db`, or the per-user database).
        searcher: the searcher used when `trials` is given ("ga", "rl", "random").
        vendor: let the planner time vendor libraries (onnxruntime, PyTorch, numpy BLAS; on a GPU, cuDNN and
            cuBLAS through PyTorch) against each generated kernel, in place, and keep the fastest (default: on,
            unless WOODPECKER_VENDOR=0). GPU targets are planned only where a GPU is attached.
        blocked_layout: force the NCHW[b]c layout pass on or off (default: on for CPU targets).
        progress: report the stages (import, optimize, build, planning call by call, whole-model timing): True
            prints them to stderr with the elapsed time, a callable receives each message; silent by default.

    Returns:
        A CompiledModel: `.run({name: array})`, `.save(path)`, `.dsl()`.
    """
    from woodpecker import config
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.targets import resolve

    report = _progress_reporter(progress)
    resolved = resolve(target)
    report("importing the model")
    model = as_onnx(model, example_inputs)
    if trials is not None:
        from woodpecker.tuner import default_db_path, tune

        db = db if db is not None else default_db_path()
        report(f"tuning: {trials} trials")
        tune(model, resolved.profile.id, searcher=searcher, trials=trials, db=db, input_shapes=input_shapes)
    graph = import_model(model, input_shapes)
    report(f"optimizing {len(graph.nodes)} nodes")
    lowered = lower_graph(optimize(graph, resolved.pass_options(blocked_layout)))
    knobs = _best_records(lowered, db, resolved)
    program, constants = make_program(lowered)
    metadata = _metadata(graph.name, resolved)
    if resolved.target_class != "cpu":
        report(f"building {len(lowered.tasks)} kernels for {resolved.profile.id}"
               f"{' (simulated measurement)' if resolved.simulated else ''}")
    if resolved.target_class in ("riscv", "mcu"):
        return _compile_simulated(model, lowered, knobs, program, constants, metadata, resolved)
    plan = config.get().vendor if vendor is None else vendor
    if resolved.target_class == "gpu":
        gpu = _compile_gpu(lowered, knobs, program, constants, metadata, resolved)
        if not plan:
            return gpu
        blocker = _gpu_plan_blocker(resolved)
        if blocker:
            gpu.metadata["plan"] = {"skipped": blocker}
            return gpu
        from woodpecker.planner.choices import DEVICE_VENDORS
        from woodpecker.planner.planner import plan_model

        return plan_model(gpu, lowered, None, vendors=DEVICE_VENDORS, threads=resolved.threads, progress=report)
    from woodpecker.codegen.build import build_tasks

    report(f"building {len(lowered.tasks)} kernels")
    executable, chosen = build_tasks(lowered.tasks, knobs, resolved.tvm_target())
    kernels = _kernel_infos(lowered, {k: (c.knobs, c.origin) for k, c in chosen.items()})
    compiled = CompiledModel(executable.mod, program, constants, kernels, metadata, executable=executable)
    if plan:
        from woodpecker.frontend.onnx import load_onnx_model
        from woodpecker.planner.planner import plan_model

        proto, _ = load_onnx_model(model)
        compiled = plan_model(compiled, lowered, proto.SerializeToString(), threads=resolved.threads, progress=report)
    return compiled


def _progress_reporter(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if not progress:
        return lambda msg: None
    import sys
    import time

    t0 = time.perf_counter()
    return lambda msg: print(f"[woodpecker {time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _kernel_infos(lowered, chosen: Mapping[str, tuple[Mapping[str, Any], str]]) -> list[KernelInfo]:
    counts = lowered.occurrences()
    return [KernelInfo(t.key, t.name, t.family, t.flops, dict(chosen[t.key][0]), chosen[t.key][1], t.source,
                       counts.get(t.key, 0)) for t in lowered.tasks.values()]


def _metadata(name: str, resolved) -> dict[str, Any]:
    import tvm

    target: dict[str, Any] = {"profile": resolved.profile.id, "profile_hash": resolved.profile.content_hash,
                              "class": resolved.target_class,
                              "measurement": "simulated" if resolved.simulated else "real"}
    if resolved.is_host:
        from woodpecker.hw.host import detect

        target.update(mcpu=detect().mcpu, threads=resolved.threads)
    return {
        "model": name,
        "target": target,
        "toolchain": {"woodpecker": __version__, "tvm": tvm.__version__},
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _compile_simulated(model, lowered, knobs, program, constants, metadata, resolved) -> CompiledModel:
    """RISC-V / MCU: one object file per kernel for the profile's target; runs under qemu (SimulatedModel)."""
    from woodpecker import config
    from woodpecker.frontend.onnx import load_onnx_model
    from woodpecker.runtime.simulated import SimulatedModel
    from woodpecker.sim.riscv.model import build_kernel_objects

    out_dir = config.get().cache_dir / "objects" / "build" / f"{resolved.profile.id}-{os.getpid()}-{id(lowered)}"
    objects = build_kernel_objects(lowered.tasks, resolved.profile, out_dir, knobs)
    kernels = _kernel_infos(lowered, {k: (o.knobs, o.origin) for k, o in objects.items()})
    by_name = {o.name: o.path for o in objects.values()}
    proto, _ = load_onnx_model(model)
    return SimulatedModel(program, constants, kernels, metadata, by_name, resolved.profile.id, proto.SerializeToString())


def _gpu_plan_blocker(resolved) -> str:
    """Why a GPU compile cannot be planned here ("" when it can): compiling for a GPU needs no GPU and no CUDA
    toolkit, planning needs both a GPU with a CUDA compiler (to load the kernels) and a CUDA build of PyTorch."""
    if resolved.simulated:
        return "no GPU attached: vendor choices (cuDNN, cuBLAS) are timed on a GPU"
    from woodpecker.measure.cuda import cuda_compiler

    if cuda_compiler() is None:
        return "no CUDA compiler (NVRTC or nvcc) to load the kernels with"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed: it is the GPU vendor (cuDNN, cuBLAS)"
    if not torch.cuda.is_available():
        return f"this PyTorch ({torch.__version__}) has no CUDA: install a CUDA build for the cuDNN/cuBLAS choices"
    return ""


def _compile_gpu(lowered, knobs, program, constants, metadata, resolved) -> CompiledModel:
    from woodpecker.runtime.gpu import compile_gpu_model

    return compile_gpu_model(lowered, knobs, program, constants, metadata, resolved)


def _best_records(lowered, db: Any, resolved) -> dict[str, Mapping[str, int | str]]:
    """Knobs of the fastest record of each task for this device and toolchain, the configured timing mode first
    (tasks without records: none)."""
    if db is None:
        return {}
    from woodpecker.records.db import RecordsDatabase, open_database

    database = open_database(db)
    assert database is not None
    try:
        device, toolchains = resolved.device(), resolved.record_toolchains()
        out = {}
        for key, task in lowered.tasks.items():
            default = dict(resolved.space(task).default)
            # within one timing mode only: hot-loop and cold-cache times of a task are not comparable. A mode whose
            # best is the default schedule (a short session measures every default first) has tuned nothing:
            # the next mode's tuned schedule serves. A record that is the default is reported as the default.
            for tools in toolchains:
                best = database.best(key, device, tools)
                if best is not None and dict(best.knobs) != default:
                    out[key] = dict(best.knobs)
                    break
        return out
    finally:
        if not isinstance(db, RecordsDatabase):
            database.close()


def load(path: str | os.PathLike[str]) -> CompiledModel:
    """Load a .wpk artifact saved by CompiledModel.save (checks format, version and hashes first)."""
    from woodpecker.runtime.artifact import load_artifact

    return load_artifact(path)
