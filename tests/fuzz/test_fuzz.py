"""Differential fuzzing in CI: 60 seeded random graphs (woodpecker.testing.fuzz) and 3 graphs of each block family
(woodpecker.testing.fuzz_blocks: attention, squeeze-excite, dense, inception, shape arithmetic), each compiled by
woodpecker and compared with onnxruntime: max |ours - ref| / max |ref| <= 1e-3 for floats, exact equality for
integer and boolean outputs, same shapes and dtypes. About 40 s on one core (`pytest tests/fuzz --durations=10`).
The seeds are fixed: a failure here reproduces with `python scripts/fuzz.py --seeds N --minimize` (add
`--block FAMILY` for a block graph), which also writes the failing model. Longer campaigns:
`python scripts/fuzz.py --count 10000 --workers 1 --state benchmarks/results/fuzz/state.jsonl` (resumable).

The other tests check the fuzzer itself: that the same seed gives the same graph, that the comparison fails when
it should, and that minimizing keeps the failure.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from woodpecker.testing import fuzz, fuzz_blocks

CI_SEEDS = range(60)
BLOCK_SEEDS = range(3)  # per block family (woodpecker.testing.fuzz_blocks): a second fixed sample, ~1 s a graph


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_random_graph_agrees_with_onnxruntime(seed):
    case = fuzz.generate(seed, max_nodes=12)
    outcome = fuzz.check(case)
    assert outcome.status == "ok", (
        f"seed {seed}: {outcome.status}: {outcome.detail} [{' '.join(outcome.ops)}] "
        f"(reproduce: python scripts/fuzz.py --seeds {seed} --max-nodes 12 --minimize)"
    )


@pytest.mark.parametrize("family", sorted(fuzz_blocks.NAMED))
@pytest.mark.parametrize("seed", BLOCK_SEEDS)
def test_block_graph_agrees_with_onnxruntime(family, seed):
    case = fuzz_blocks.generate_block(seed, family)
    assert _has_block(case.model, family), f"generate_block({seed}, {family!r}) made no {family} block"
    outcome = fuzz.check(case)
    assert outcome.status == "ok", f"{family} seed {seed}: {outcome.status}: {outcome.detail} [{' '.join(outcome.ops)}]"


def _has_block(model: onnx.ModelProto, family: str) -> bool:
    """Whether the graph holds the signature of a block family: a node of one op fed by a node of another."""
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    fed = {(n.op_type, producer.get(i)) for n in model.graph.node for i in n.input}
    concat = {("Concat", "Conv"), ("Concat", "Relu")}
    signature = {"attention": {("MatMul", "Softmax")}, "shape_arithmetic": {("Reshape", "Concat"), ("Expand", "Shape")},
                 "squeeze_excite": {("Mul", "Sigmoid"), ("Mul", "HardSigmoid")}, "dense": concat, "inception": concat}
    return bool(fed & signature[family])


def test_random_graphs_draw_the_blocks():
    """generate() draws the block families among its single ops, not only generate_block()."""
    found = {family: 0 for family in ("attention", "shape_arithmetic", "squeeze_excite")}
    for seed in range(100):
        model = fuzz.generate(seed).model
        for family in found:
            found[family] += _has_block(model, family)
    assert all(n >= 3 for n in found.values()), found


def test_float_divisors_are_bounded_away_from_zero():
    """Fuzz seeds 3290 and 5076 divided by an activation (the generator swapped Div's operands): by x - x, or by a
    MatMul with a zero operand, whose zero's sign (and so the quotient's infinity) onnxruntime and woodpecker may
    choose differently. A float Div's divisor is a constant, |y| + c, or the Sqrt of a variance plus epsilon."""
    for seed in range(400):
        model = fuzz.generate(seed).model
        producer = {o: n for n in model.graph.node for o in n.output}
        constants = {i.name for i in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type != "Div" or node.input[1] in constants:
                continue
            divisor = producer[node.input[1]]
            if divisor.op_type == "Add":  # |y| + 0.5
                assert divisor.input[0] in producer and producer[divisor.input[0]].op_type == "Abs", seed
                assert divisor.input[1] in constants, seed
            else:  # a decomposed layer norm's sqrt(variance + epsilon)
                assert divisor.op_type == "Sqrt", (seed, divisor.op_type)


def test_generation_is_deterministic():
    for seed in (3, 17):
        a, b = fuzz.generate(seed), fuzz.generate(seed)
        assert a.model.SerializeToString() == b.model.SerializeToString()
        assert a.inputs.keys() == b.inputs.keys()
        assert all(np.array_equal(a.inputs[k], b.inputs[k]) for k in a.inputs)
    assert fuzz.generate(3).model.SerializeToString() != fuzz.generate(4).model.SerializeToString()


def test_generated_graphs_cover_the_intended_patterns():
    """Over a few dozen seeds the generator reaches the anchors, the data movement and the fusion-hostile shapes
    it is meant to produce (a generator that stopped producing them would make the CI run pointless)."""
    ops, multi_output, reused = set(), 0, 0
    for seed in range(60):
        case = fuzz.generate(seed, max_nodes=12)
        ops.update(case.ops)
        multi_output += len(case.model.graph.output) > 1
        uses: dict[str, int] = {}
        for node in case.model.graph.node:
            for name in node.input:
                uses[name] = uses.get(name, 0) + 1
        produced = {o for n in case.model.graph.node for o in n.output}
        reused += any(uses.get(v, 0) > 1 for v in produced)
    for op in ("Conv", "MatMul", "Gemm", "MaxPool", "AveragePool", "Concat", "Slice", "Transpose", "Reshape",
               "Softmax", "LayerNormalization", "Where", "Gather", "Pad", "Expand", "Split"):
        assert op in ops, f"no {op} in 60 generated graphs"
    assert any(op.startswith("Reduce") for op in ops)
    assert multi_output >= 10, "outputs taken from the middle of chains are rare"
    assert reused >= 10, "values with several consumers (diamonds) are rare"


def test_compare_catches_differences():
    ref = {"y": np.array([1.0, -2.0, 4.0], np.float32), "k": np.array([1, 2], np.int64)}
    same = {"y": ref["y"] + np.float32(1e-4), "k": ref["k"].copy()}
    assert fuzz.compare(same, ref) is None
    assert "relative error" in fuzz.compare({**same, "y": ref["y"] + np.float32(0.01)}, ref)
    assert "integer" in fuzz.compare({**same, "k": np.array([1, 3], np.int64)}, ref)
    assert "float64" in fuzz.compare({**same, "y": ref["y"].astype(np.float64)}, ref)
    assert "NaN" in fuzz.compare({**same, "y": np.array([1.0, np.nan, 4.0], np.float32)}, ref)
    assert "missing" in fuzz.compare({"y": same["y"]}, ref)


def test_check_reports_a_wrong_compiler():
    """A 'compiler' whose outputs are off by a little is reported as a mismatch, one that raises as a crash."""
    import woodpecker

    case = fuzz.generate(5, max_nodes=6)

    class Off:
        def __init__(self, model):
            self.inner = woodpecker.compile(model, vendor=False)

        def run(self, feed):
            return {k: (v + np.abs(v).max() * 0.01 + 0.01 if v.dtype.kind == "f" else v + 1)
                    for k, v in self.inner.run(feed).items()}

    def broken(model):
        raise RuntimeError("boom")

    assert fuzz.check(case, Off).status == "mismatch"
    crashed = fuzz.check(case, broken)
    assert crashed.status == "crash" and "RuntimeError: boom" in crashed.detail


def test_minimize_keeps_the_failure_and_shrinks():
    def live_ops(model: onnx.ModelProto) -> list[str]:
        """Op types of the nodes the outputs depend on (a generated graph can hold dead nodes)."""
        needed, ops = {o.name for o in model.graph.output}, []
        for node in reversed(model.graph.node):
            if needed & set(node.output):
                needed |= set(node.input)
                ops.append(node.op_type)
        return ops

    case = next(c for c in (fuzz.generate(s) for s in range(80))
                if "Softmax" in live_ops(c.model) and len(live_ops(c.model)) >= 8)

    def fails(model: onnx.ModelProto, inputs) -> bool:
        return any(n.op_type == "Softmax" for n in model.graph.node)

    small = fuzz.minimize(case.model, case.inputs, fails)
    assert fails(small, case.inputs)
    assert len(small.graph.node) < len(case.model.graph.node)
    onnx.checker.check_model(small, full_check=True)
