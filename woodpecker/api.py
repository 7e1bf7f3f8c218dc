"""Public API: `compile` a model for a target, `load` a saved artifact. The stable entry points of woodpecker."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from woodpecker.version import __version__

if TYPE_CHECKING:
    from woodpecker.ir.graph import Graph
    from woodpecker.runtime.compiled import CompiledModel


# `import woodpecker` stays light (a device kit loads artifacts without onnx): the frontend is imported on use.
def as_onnx(model: Any, example_inputs: Any = None) -> Any:
    """A torch.nn.Module becomes an onnx.ModelProto (exported with example_inputs); other models pass through."""
    from woodpecker.frontend.source import as_onnx as _as_onnx

    return _as_onnx(model, example_inputs)


def import_model(model: Any, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 example_inputs: Any = None) -> Graph:
    """ONNX file path, onnx.ModelProto, or torch.nn.Module (with example_inputs) -> Graph."""
    from woodpecker.frontend.source import import_model as _import_model

    return _import_model(model, input_shapes, example_inputs)


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
    from woodpecker.frontend.onnx import import_onnx, load_onnx_model
    from woodpecker.lowering.model import lower_graph
    from woodpecker.lowering.to_runtime import to_program
    from woodpecker.passes.pipeline import optimize
    from woodpecker.records.select import best_knobs
    from woodpecker.targets import BuildRequest, resolve

    report = _progress_reporter(progress)
    resolved = resolve(target)
    report("importing the model")
    proto, label = load_onnx_model(as_onnx(model, example_inputs))  # parsed once: frontend and planner share it
    graph = import_onnx(proto, input_shapes, label=label)
    report(f"optimizing {len(graph.nodes)} nodes")
    lowered = lower_graph(optimize(graph, resolved.pass_options(blocked_layout)))  # lowered once, also when tuning
    if trials is not None:
        from woodpecker.tuner import default_db_path, tune

        db = db if db is not None else default_db_path()
        report(f"tuning: {trials} trials")
        tune(proto, resolved, searcher=searcher, trials=trials, db=db, lowered=lowered)
    program, constants = to_program(lowered)
    report(resolved.building_message(len(lowered.tasks)))
    return resolved.build(BuildRequest(
        lowered=lowered, knobs=best_knobs(lowered.tasks, db, resolved), program=program, constants=constants,
        metadata=_metadata(graph.name, resolved), onnx_bytes=proto.SerializeToString(),
        plan=config.get().vendor if vendor is None else vendor, progress=report))


def _progress_reporter(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if not progress:
        return lambda msg: None
    import sys
    import time

    t0 = time.perf_counter()
    return lambda msg: print(f"[woodpecker {time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _metadata(name: str, resolved) -> dict[str, Any]:
    import tvm

    return {
        "model": name,
        "target": resolved.describe(),
        "toolchain": {"woodpecker": __version__, "tvm": tvm.__version__},
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def load(path: str | os.PathLike[str]) -> CompiledModel:
    """Load a .wpk artifact saved by CompiledModel.save (checks format, version and hashes first)."""
    from woodpecker.runtime.load import load_artifact

    return load_artifact(path)
