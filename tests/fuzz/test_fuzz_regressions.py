"""Mismatches the differential fuzzer found, minimised (scripts/fuzz.py --minimize) into fixed graphs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

import woodpecker


def _model(nodes, inputs, opset=17):
    graph = helper.make_graph(nodes, "regression", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                                    for n, s in inputs],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _agrees(model) -> None:
    cm = woodpecker.compile(model, vendor=False)
    feed = cm.random_inputs(seed=1)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_allclose(cm.run(feed)["o"], ref, rtol=1e-5, atol=1e-6)


def test_batched_matmul_of_unit_matrices_with_an_epilogue():
    """Fuzz seed 25 (MatMul of [4,1,1] by [4,1,1], then Softplus): the product has no reduction axis, so the
    producer block had no loop of its own after compute_at and the default schedule vectorized the shared
    parallel loop; every batch read the last batch's product."""
    for epilogue in ("Softplus", "Relu"):
        _agrees(_model([helper.make_node("MatMul", ["y", "z"], ["t"]), helper.make_node(epilogue, ["t"], ["o"])],
                       [("y", [4, 1, 1]), ("z", [4, 1, 1])]))


def test_reductions_of_a_scalar():
    """Fuzz seed 682 (ReduceSum over axes [] of the rank-0 result of an earlier ReduceSum): the frontend indexed
    the first reduced axis of a tensor that has none (IndexError, reported as an import failure). A scalar reduces
    to itself, a sum of squares to its square."""
    for op in ("ReduceSum", "ReduceSumSquare", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceLogSumExp"):
        for keepdims in (0, 1):
            first = helper.make_node("ReduceSum", ["x", "all"], ["s"], keepdims=0)  # [3] -> scalar
            inputs = ["s", "none"] if op == "ReduceSum" else ["s"]  # axes [] (an input from opset 13), or none
            model = _model([first, helper.make_node(op, inputs, ["o"], keepdims=keepdims)], [("x", [3])])
            model.graph.initializer.extend([helper.make_tensor("all", TensorProto.INT64, [1], [0]),
                                            helper.make_tensor("none", TensorProto.INT64, [0], [])])
            _agrees(model)


def test_sum_of_an_int64_scalar():
    """The int64 form of fuzz seed 682, as generated: ReduceSum of [2] to a scalar, then ReduceSum over []."""
    nodes = [helper.make_node("ReduceSum", ["n", "all"], ["s"], keepdims=0),
             helper.make_node("ReduceSum", ["s", "none"], ["o"], keepdims=0)]
    graph = helper.make_graph(nodes, "regression", [helper.make_tensor_value_info("n", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("o", TensorProto.INT64, [])],
                              [helper.make_tensor("all", TensorProto.INT64, [1], [0]),
                               helper.make_tensor("none", TensorProto.INT64, [0], [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = woodpecker.compile(model, vendor=False).run({"n": np.array([3, -10], np.int64)})["o"]
    assert out.dtype == np.int64 and out.shape == () and int(out) == -7


def _where_of_constants(dtype: int, then, otherwise, x_type: int = TensorProto.DOUBLE):
    nodes = [helper.make_node("Greater", ["x", "zero"], ["c"]), helper.make_node("Where", ["c", "a", "b"], ["o"])]
    inits = [helper.make_tensor("zero", x_type, [], [0]), helper.make_tensor("a", dtype, [], [then]),
             helper.make_tensor("b", dtype, [], [otherwise])]
    graph = helper.make_graph(nodes, "regression", [helper.make_tensor_value_info("x", x_type, [4])],
                              [helper.make_tensor_value_info("o", dtype, [4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_where_between_two_scalar_constants_keeps_their_dtype():
    """Fuzz seed 44 (CI sample; a float64 ReduceMax whose -inf handling selects Where(x == -inf, 0.0, 1.0)): both
    branches were scalar literals, which alone are float32 (int32) in the kernel language, and the simplifier also
    folded an explicit f64(...) cast of a literal into a bare literal. The kernel wrote float32 into a float64
    output (a dtype error at the call; int64 constants over 2**31 failed to build), and float64 scalar constants
    were rounded to float32 precision."""
    x = np.array([1.0, -1.0, 2.0, 0.0])
    for dtype, then, otherwise in ((TensorProto.DOUBLE, 0.1, 0.62408811), (TensorProto.INT64, 2**40, -3)):
        model = _where_of_constants(dtype, then, otherwise)
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        have = woodpecker.compile(model, vendor=False).run({"x": x})["o"]
        assert have.dtype == want.dtype and np.array_equal(have, want), (have, want)  # exact: no float32 rounding


def test_division_by_a_divisor_that_simplifies_to_zero():
    """Fuzz seed 3290 (Div(c, Sub(x, x))): TVM's simplifier folds x - x to 0.0 and then refused to fold c / 0.0,
    an InternalError ("Divide by zero") while building. The kernel now writes IEEE's c / +0 out: +-inf by the sign
    of c, NaN for 0 / 0 and NaN / 0 (as onnxruntime gives for finite x, where x - x is +0)."""
    x = np.array([1.0, -2.0, 0.0, 3.0], np.float32)
    numerators = helper.make_tensor("c", TensorProto.FLOAT, [4], [0.75, -1.0, 0.0, float("nan")])
    sub = helper.make_node("Sub", ["x", "x"], ["z"])
    for last in (helper.make_node("Div", ["c", "z"], ["o"]), helper.make_node("Div", ["x", "z"], ["o"]),
                 helper.make_node("Reciprocal", ["z"], ["o"])):
        model = _model([sub, last], [("x", [4])])
        model.graph.initializer.append(numerators)
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        have = woodpecker.compile(model, vendor=False).run({"x": x})["o"]
        np.testing.assert_array_equal(have, want)  # inf, -inf and NaN at the same places


def test_a_result_that_simplifies_to_a_constant_keeps_its_dtype():
    """Post-campaign sample, seed 10178 (float64 Pad, then a Slice that reads only the padding): the fused kernel
    simplified to `Y = 0.0`, a float32 result for a float64 output (a dtype error at the call)."""
    for dtype, fill in ((TensorProto.DOUBLE, 0.25), (TensorProto.INT64, 2**40)):
        nodes = [helper.make_node("Pad", ["x", "pads", "fill"], ["p"], mode="constant"),
                 helper.make_node("Slice", ["p", "starts", "ends", "axes"], ["o"])]
        inits = [helper.make_tensor("pads", TensorProto.INT64, [4], [0, 0, 0, 3]),
                 helper.make_tensor("fill", dtype, [], [fill]),
                 helper.make_tensor("starts", TensorProto.INT64, [1], [5]),
                 helper.make_tensor("ends", TensorProto.INT64, [1], [7]),
                 helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
        graph = helper.make_graph(nodes, "regression", [helper.make_tensor_value_info("x", dtype, [1, 4])],
                                  [helper.make_tensor_value_info("o", dtype, [1, 2])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        x = np.arange(4).reshape(1, 4).astype(np.float64 if dtype == TensorProto.DOUBLE else np.int64)
        have = woodpecker.compile(model, vendor=False).run({"x": x})["o"]
        assert have.dtype == x.dtype and np.array_equal(have, np.full((1, 2), fill, x.dtype)), have
