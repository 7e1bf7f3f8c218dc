"""Public API: `compile` a model for a target, `load` a saved artifact. The stable entry points of woodpecker."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker import __version__
from woodpecker.errors import TargetError
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
        vendor: let the planner time vendor libraries (onnxruntime, PyTorch, numpy BLAS) against each generated
            kernel, in place, and keep the fastest (default: on, unless WOODPECKER_VENDOR=0).
        blocked_layout: force the NCHW[b]c layout pass on or off (default: on for CPU targets).

    Returns:
        A CompiledModel: `.run({name: array})`, `.save(path)`, `.dsl()`.
    """
    from woodpecker import config
    from woodpecker.codegen.build import build_tasks
    from woodpecker.hw.host import llvm_target
    from woodpecker.hw.profile import load_profile
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import PassOptions, optimize

    profile = load_profile(target)
    if profile.kind != "cpu":
        raise TargetError(f"target {profile.id!r} ({profile.kind}) cannot be compiled by this version; use 'host'")
    model = as_onnx(model, example_inputs)
    if trials is not None:
        from woodpecker.tuner import default_db_path, tune

        db = db if db is not None else default_db_path()
        tune(model, target, searcher=searcher, trials=trials, db=db, input_shapes=input_shapes)
    graph = import_model(model, input_shapes)
    options = PassOptions(blocked_layout=True if blocked_layout is None else blocked_layout)
    lowered = lower_graph(optimize(graph, options))
    threads = config.prepare_tvm_threads()
    knobs = _best_records(lowered, db, profile, threads)
    executable, chosen = build_tasks(lowered.tasks, knobs, llvm_target(threads))
    program, constants = make_program(lowered)
    counts = lowered.occurrences()
    kernels = [
        KernelInfo(t.key, t.name, t.family, t.flops, dict(chosen[t.key].knobs), chosen[t.key].origin, t.source,
                   counts.get(t.key, 0))
        for t in lowered.tasks.values()
    ]
    import tvm

    from woodpecker.hw.host import detect

    metadata = {
        "model": graph.name,
        "target": {"profile": profile.id, "profile_hash": profile.content_hash, "mcpu": detect().mcpu,
                   "threads": threads, "measurement": profile.measurement},
        "toolchain": {"woodpecker": __version__, "tvm": tvm.__version__},
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    compiled = CompiledModel(executable.mod, program, constants, kernels, metadata, executable=executable)
    if config.get().vendor if vendor is None else vendor:
        from woodpecker.frontend.onnx import load_onnx_model
        from woodpecker.planner.planner import plan_model

        proto, _ = load_onnx_model(model)
        compiled = plan_model(compiled, lowered, proto.SerializeToString(), threads=threads)
    return compiled


def _best_records(lowered, db: Any, profile, threads: int) -> dict[str, Mapping[str, int | str]]:
    """Knobs of the fastest record of each task for this device and toolchain (tasks without records: none)."""
    if db is None:
        return {}
    from woodpecker.hw.identity import device_for, toolchain
    from woodpecker.records.db import RecordsDatabase, open_database

    from woodpecker.schedule.apply import default_knobs

    database = open_database(db)
    assert database is not None
    try:
        device, tools = device_for(profile, threads), toolchain()
        out = {}
        for key, task in lowered.tasks.items():
            best = database.best(key, device, tools)
            # a record that is the default schedule is not a tuned schedule: report it as the default
            if best is not None and dict(best.knobs) != default_knobs(task):
                out[key] = dict(best.knobs)
        return out
    finally:
        if not isinstance(db, RecordsDatabase):
            database.close()


def load(path: str | os.PathLike[str]) -> CompiledModel:
    """Load a .wpk artifact saved by CompiledModel.save (checks format, version and hashes first)."""
    from woodpecker.runtime.artifact import load_artifact

    return load_artifact(path)
