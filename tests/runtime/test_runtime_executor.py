"""Executor and CompiledModel: input validation, repeatable runs, the arena plan of a real program."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import woodpecker
from woodpecker.errors import InputError
from woodpecker.runtime.memory import ALIGN


def small_model():
    """Two inputs, two outputs, a conv chain, a flatten (a view) and a dense layer."""
    rng = np.random.default_rng(0)
    inits = {
        "w1": rng.normal(0, 0.3, (8, 4, 3, 3)), "b1": rng.normal(0, 0.1, 8), "w2": rng.normal(0, 0.2, (8, 8, 3, 3)),
        "w3": rng.normal(0, 0.05, (10, 288)), "b3": rng.normal(0, 0.1, 10),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["d"], transB=1),
        helper.make_node("Add", ["d", "z"], ["logits"]),
    ]
    g = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10]),
         helper.make_tensor_value_info("r1", TensorProto.FLOAT, [1, 8, 6, 6])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def proto():
    return small_model()


@pytest.fixture(scope="module")
def cm(proto):
    return woodpecker.compile(proto)


@pytest.fixture
def feeds():
    rng = np.random.default_rng(7)
    return {"x": rng.standard_normal((1, 4, 6, 6)).astype(np.float32),
            "z": rng.standard_normal((1, 10)).astype(np.float32)}


def test_matches_onnxruntime(cm, proto, feeds):
    out = cm.run(feeds)
    assert list(out) == ["logits", "r1"]
    ref = ort.InferenceSession(proto.SerializeToString()).run(None, feeds)
    for got, want in zip(out.values(), ref):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert [t.name for t in cm.inputs] == ["x", "z"] and [t.name for t in cm.outputs] == ["logits", "r1"]


def test_repeated_runs_give_identical_outputs(cm, feeds):
    first = cm.run(feeds)
    for _ in range(3):
        again = cm.run(feeds)
        for k in first:
            np.testing.assert_array_equal(again[k], first[k])
    # execute() alone, on the inputs already in place, again gives the same outputs
    ex = cm.executor
    for _ in range(3):
        ex.execute()
    for k, v in ex.get_outputs().items():
        np.testing.assert_array_equal(v, first[k])
    # outputs are copies: changing them does not change the next run's result
    first["logits"][:] = 0
    assert np.any(cm.run(feeds)["logits"] != 0)


def test_inputs_are_not_modified(cm, feeds):
    saved = {k: v.copy() for k, v in feeds.items()}
    cm.run(feeds)
    for k in feeds:
        np.testing.assert_array_equal(feeds[k], saved[k])


def test_outputs_depend_on_the_inputs(cm, feeds):
    a = cm.run(feeds)["logits"]
    feeds2 = dict(feeds, z=feeds["z"] + 1)
    np.testing.assert_allclose(cm.run(feeds2)["logits"], a + 1, rtol=1e-5, atol=1e-5)


def _input_error(cm, feeds) -> str:
    with pytest.raises(InputError) as info:
        cm.run(feeds)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_unknown_input_name(cm, feeds):
    msg = _input_error(cm, dict(feeds, y=feeds["x"]))
    assert "'y'" in msg and "unknown" in msg


def test_missing_input(cm, feeds):
    msg = _input_error(cm, {"x": feeds["x"]})
    assert "'z'" in msg and "missing" in msg


def test_wrong_shape(cm, feeds):
    msg = _input_error(cm, dict(feeds, x=feeds["x"][:, :3]))
    assert "'x'" in msg and "[1, 3, 6, 6]" in msg and "[1, 4, 6, 6]" in msg


def test_wrong_dtype(cm, feeds):
    msg = _input_error(cm, dict(feeds, z=feeds["z"].astype(np.int64)))
    assert "'z'" in msg and "int64" in msg and "float32" in msg
    msg = _input_error(cm, dict(feeds, x=feeds["x"] > 0))
    assert "'x'" in msg and "bool" in msg


def test_float64_inputs_are_converted(cm, feeds):
    ref = cm.run(feeds)
    out = cm.run({k: v.astype(np.float64) for k, v in feeds.items()})
    np.testing.assert_allclose(out["logits"], ref["logits"], rtol=1e-6)


def test_bare_array_needs_a_single_input_model(cm, feeds):
    msg = _input_error(cm, feeds["x"])
    assert "2 inputs" in msg


def test_not_a_mapping(cm, feeds):
    msg = _input_error(cm, [feeds["x"], feeds["z"]])
    assert "dict" in msg


def test_memory_plan_of_the_program(cm):
    ex = cm.executor
    plan = ex.memory
    program = cm.program
    # the arena holds every run-time value, aligned, and is smaller than all of them side by side
    sizes = {v: int(np.prod(s)) * np.dtype(d).itemsize for v, (s, d) in program.values.items() if v not in cm.constants}
    for v, n in sizes.items():
        p = plan.placements[plan.root[v]]
        assert p.offset % ALIGN == 0 and n <= p.nbytes and p.offset + p.nbytes <= plan.arena_bytes
    assert plan.arena_bytes < sum(-(-n // ALIGN) * ALIGN for n in sizes.values())
    # the flatten is a view: it shares its source's storage
    assert program.views
    for src, dst in program.views:
        assert plan.root[dst] == plan.root[src]
    # a call's output never shares bytes with one of its inputs (by the bytes each value itself occupies: the
    # inputs of an in-place concat share a root, side by side)
    def extent(v):
        start = plan.placements[plan.root[v]].offset + plan.offsets.get(v, 0)
        shape, dtype = program.values[v]
        return start, start + int(np.prod(shape)) * np.dtype(dtype).itemsize

    for call in program.calls:
        *ins, (out, _) = call.args
        o0, o1 = extent(out)
        for v, _ in ins:
            if v in cm.constants:
                continue
            i0, i1 = extent(v)
            assert i1 <= o0 or o1 <= i0


def test_benchmark_and_random_inputs(cm):
    stats = cm.benchmark(repeat=3, warmup=1)
    assert stats["repeat"] == 3 and stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
    r = cm.random_inputs(seed=3)
    assert {k: v.shape for k, v in r.items()} == {"x": (1, 4, 6, 6), "z": (1, 10)}
    np.testing.assert_array_equal(r["x"], cm.random_inputs(seed=3)["x"])
    assert "kernel " in cm.dsl() and cm.gflop > 0
