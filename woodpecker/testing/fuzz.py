"""Differential fuzzing: seeded random ONNX graphs that woodpecker must compute as onnxruntime does.

The graphs come from woodpecker.testing.fuzz_graphs with the blocks of fuzz_blocks (`generate(seed)`). `check(case)`
compiles the model with woodpecker, runs both, and compares: max |ours - ref| / max |ref| <= 1e-3 for floats, exact
equality for integers and booleans, identical shapes and dtypes. `minimize(...)` shrinks a failing model (fewer
outputs, nodes bypassed) while it keeps failing.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from woodpecker.measure.correctness import RTOL, outputs_difference
from woodpecker.testing import fuzz_graphs
from woodpecker.testing.fuzz_blocks import BLOCKS
from woodpecker.testing.fuzz_graphs import FuzzCase

__all__ = ["RTOL", "FuzzCase", "Outcome", "check", "check_seed", "compare", "generate", "minimize", "run_onnxruntime"]


def generate(seed: int, max_nodes: int = 15) -> FuzzCase:
    """The fuzz graph of a seed: fuzz_graphs' single ops and fuzz_blocks' multi-node blocks."""
    return fuzz_graphs.generate(seed, max_nodes, BLOCKS)


@dataclasses.dataclass(frozen=True)
class Outcome:
    seed: int
    status: str  # "ok" | "mismatch" | "crash" (woodpecker raised or crashed) | "invalid" (onnxruntime refused it)
    detail: str = ""
    ops: tuple[str, ...] = ()


def run_onnxruntime(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    # the graph as written, op by op: onnxruntime's rewrites are not under test, and one (FuseReluClip) refuses
    # some valid Relu -> Clip graphs
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(inputs))))


def compare(ours: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray], rtol: float = RTOL) -> str | None:
    """None when every output agrees (woodpecker.measure.correctness); otherwise what differs, on one line."""
    return outputs_difference(ours, ref, rtol)


def check(case: FuzzCase, compile_fn: Callable[[onnx.ModelProto], object] | None = None) -> Outcome:
    """Compile and run the case with woodpecker and onnxruntime; the outcome of the comparison."""
    ops = tuple(case.ops)
    try:
        ref = run_onnxruntime(case.model, case.inputs)
    except Exception as err:  # the generator made something onnxruntime refuses: a generator bug, not ours
        return Outcome(case.seed, "invalid", f"onnxruntime: {str(err).splitlines()[0][:300]}", ops)
    try:
        if compile_fn is None:
            import woodpecker

            # our kernels only: a vendor plan may be onnxruntime, the reference itself
            compiled = woodpecker.compile(case.model, target="host", vendor=False)
        else:
            compiled = compile_fn(case.model)
        ours = compiled.run(dict(case.inputs))  # type: ignore[attr-defined]
    except Exception as err:
        last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
        where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
        return Outcome(case.seed, "crash", f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}{where}", ops)
    diff = compare(ours, ref)
    return Outcome(case.seed, "mismatch" if diff else "ok", diff or "", ops)


def check_seed(seed: int, max_nodes: int = 15, block: str | None = None) -> Outcome:
    """generate (or fuzz_blocks.generate_block for one block family) + check, for worker processes (plain
    arguments in, plain data out)."""
    try:
        if block is None:
            case = generate(seed, max_nodes)
        else:
            from woodpecker.testing.fuzz_blocks import generate_block

            case = generate_block(seed, block)
    except Exception as err:  # the generator declared a shape ONNX disagrees with: its bug, reported as such
        return Outcome(seed, "invalid", f"generator: {str(err).splitlines()[0][:300]}")
    return check(case)


# ----------------------------------------------------------------------------------------------------------------
# minimizing


def _prune(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the nodes, initializers and inputs that no graph output depends on."""
    g = model.graph
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(reversed(keep))
    inits = [i for i in g.initializer if i.name in needed]
    del out.graph.initializer[:]
    out.graph.initializer.extend(inits)
    ins = [i for i in g.input if i.name in needed]
    if ins:  # keep at least one input: a model without inputs is a different thing to test
        del out.graph.input[:]
        out.graph.input.extend(ins)
    return out


def _with_outputs(model: onnx.ModelProto, keep: Sequence[int]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    outputs = [model.graph.output[i] for i in keep]
    del out.graph.output[:]
    out.graph.output.extend(outputs)
    return _prune(out)


def _bypass(model: onnx.ModelProto, index: int) -> onnx.ModelProto | None:
    """The model with node `index` removed, its (single) output replaced by its first input of the same type."""
    node = model.graph.node[index]
    if len(node.output) != 1:
        return None
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    for init in model.graph.initializer:
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
    target = types.get(node.output[0])
    source = next((i for i in node.input if i and types.get(i) == target), None)
    if source is None or target is None:
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[index]
    for n in out.graph.node:
        for k, name in enumerate(n.input):
            if name == node.output[0]:
                n.input[k] = source
    for o in out.graph.output:
        if o.name == node.output[0]:
            if any(o2.name == source for o2 in out.graph.output) or source in {i.name for i in out.graph.input}:
                return None  # an output that is an input, or twice the same output: another thing to test
            o.name = source
    return _prune(out)


def minimize(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray],
             fails: Callable[[onnx.ModelProto, Mapping[str, np.ndarray]], bool], rounds: int = 4) -> onnx.ModelProto:
    """A smaller model on which `fails` still holds: single outputs first, then nodes bypassed one at a time."""
    best = model
    for i in range(len(model.graph.output)):
        trial = _with_outputs(model, [i])
        if len(trial.graph.node) < len(best.graph.node) and _still(trial, inputs, fails):
            best = trial
    for _ in range(rounds):
        changed = False
        i = len(best.graph.node) - 1
        while i >= 0:
            trial = _bypass(best, i) if i < len(best.graph.node) else None
            if trial is not None and _still(trial, inputs, fails):
                best, changed = trial, True
            i -= 1
        if not changed:
            break
    return best


def _still(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], fails) -> bool:
    feed = {i.name: inputs[i.name] for i in model.graph.input if i.name in inputs}
    try:
        onnx.checker.check_model(model, full_check=True)
        return bool(fails(model, feed))
    except Exception:
        return False
