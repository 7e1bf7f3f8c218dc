"""ai.onnx.preview.training.Gradient (woodpecker/frontend/onnx_ops_gradient.py) against central finite differences of
the forward graph in float64 (onnxruntime's default build has no Gradient kernel to compare with)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import woodpecker
from woodpecker.errors import UnsupportedOpError

DOMAIN = "ai.onnx.preview.training"


def _model(nodes, inputs: dict[str, tuple[int, ...]], y: str, xs: list[str]) -> onnx.ModelProto:
    grad = helper.make_node("Gradient", xs, [f"d_{x}" for x in xs], name="grad", domain=DOMAIN, xs=xs, y=y)
    graph = helper.make_graph(
        [*nodes, grad], "g",
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(y, TensorProto.DOUBLE, None)]
        + [helper.make_tensor_value_info(f"d_{x}", TensorProto.DOUBLE, list(inputs[x])) for x in xs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])


def _forward_sum(model: onnx.ModelProto, feed: dict[str, np.ndarray], y: str) -> float:
    import onnxruntime as ort

    forward = onnx.ModelProto()
    forward.CopyFrom(model)
    kept = [n for n in forward.graph.node if n.domain != DOMAIN]
    del forward.graph.node[:]
    forward.graph.node.extend(kept)
    del forward.graph.output[:]
    forward.graph.output.extend([helper.make_tensor_value_info(y, TensorProto.DOUBLE, None)])
    del forward.opset_import[1:]
    sess = ort.InferenceSession(forward.SerializeToString(), providers=["CPUExecutionProvider"])
    return float(np.sum(sess.run([y], feed)[0]))


def _check(nodes, inputs, y, xs, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    feed = {n: rng.uniform(0.5, 2.0, s) if positive else rng.standard_normal(s) for n, s in inputs.items()}
    model = _model(nodes, inputs, y, xs)
    got = woodpecker.compile(model, vendor=False).run(feed)
    eps = 1e-6
    for x in xs:
        want = np.zeros_like(feed[x])
        for idx in np.ndindex(feed[x].shape):
            up, down = {**feed, x: feed[x].copy()}, {**feed, x: feed[x].copy()}
            up[x][idx] += eps
            down[x][idx] -= eps
            want[idx] = (_forward_sum(model, up, y) - _forward_sum(model, down, y)) / (2 * eps)
        assert got[f"d_{x}"].shape == feed[x].shape
        np.testing.assert_allclose(got[f"d_{x}"], want, rtol=1e-5, atol=1e-6, err_msg=f"d{y}/d{x}")


def _n(op, ins, out, **attrs):
    return helper.make_node(op, ins, [out], name=f"{op}_{out}", **attrs)


def test_broadcast_arithmetic():
    """Sub, Mul and Div with broadcasting: the gradient of a broadcast input is summed over the broadcast axes."""
    nodes = [_n("Mul", ["a", "b"], "c"), _n("Sub", ["c", "k"], "d"), _n("Div", ["d", "b"], "e"), _n("Add", ["e", "a"], "y")]
    _check(nodes, {"a": (2, 3), "b": (1, 3), "k": (3,)}, "y", ["a", "b", "k"], positive=True)


def test_activations_and_a_value_used_twice():
    nodes = [_n("Tanh", ["a"], "t"), _n("Sigmoid", ["a"], "s"), _n("Mul", ["t", "s"], "m"), _n("Exp", ["m"], "e"),
             _n("Relu", ["a"], "r"), _n("Add", ["e", "r"], "u"), _n("Neg", ["u"], "y")]
    _check(nodes, {"a": (3, 4)}, "y", ["a"], seed=1)


def test_log_sqrt_and_matmul():
    nodes = [_n("Log", ["a"], "l"), _n("Sqrt", ["a"], "q"), _n("Add", ["l", "q"], "u"), _n("MatMul", ["u", "w"], "y")]
    _check(nodes, {"a": (2, 3), "w": (3, 4)}, "y", ["a", "w"], seed=2, positive=True)


def test_an_input_y_does_not_depend_on_has_a_zero_gradient():
    nodes = [_n("Identity", ["a"], "y")]
    _check(nodes, {"a": (2,), "b": (3,)}, "y", ["a", "b"])


def test_a_node_without_a_rule_is_refused_naming_it():
    model = _model([_n("Cos", ["a"], "y")], {"a": (2,)}, "y", ["a"])
    with pytest.raises(UnsupportedOpError, match=r"Gradient node 'grad'.*gradient through Cos node 'Cos_y' is not supported"):
        woodpecker.compile(model, vendor=False)


def test_an_initializer_x_and_a_branch_that_does_not_depend_on_xs():
    """An x held as an initializer is differentiated like an input (it is constant to the compiler, not to the
    Gradient); a Cast of an integer input feeds y but not from any x, so it is neither differentiated nor refused."""
    w = np.array([[0.5, -1.5, 2.0]], dtype=np.float64)
    nodes = [_n("Mul", ["a", "w"], "m"), _n("Cast", ["k"], "kf", to=TensorProto.DOUBLE), _n("Mul", ["m", "kf"], "y")]
    grad = helper.make_node("Gradient", ["a", "w"], ["d_a", "d_w"], name="grad", domain=DOMAIN, xs=["a", "w"], y="y")
    graph = helper.make_graph(
        [*nodes, grad], "g",
        [helper.make_tensor_value_info("a", TensorProto.DOUBLE, [2, 3]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in ("y", "d_a", "d_w")],
        initializer=[onnx.numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    a = np.random.default_rng(3).standard_normal((2, 3))
    k = np.array([[1, 2, 3], [-1, 0, 4]], dtype=np.int64)
    got = woodpecker.compile(model, vendor=False).run({"a": a, "k": k})
    np.testing.assert_allclose(got["d_a"], w * k, rtol=1e-12)
    np.testing.assert_allclose(got["d_w"], np.sum(a * k, axis=0, keepdims=True), rtol=1e-12)


def test_a_shape_of_an_x_is_constant_to_the_gradient():
    """y = a * Cast(Shape(a)): the Shape branch depends on a but carries no gradient (an integer value), so it is
    neither differentiated nor refused: dy/da = the shape, broadcast."""
    nodes = [_n("Shape", ["a"], "s"), _n("Cast", ["s"], "sf", to=TensorProto.DOUBLE), _n("Mul", ["a", "sf"], "y")]
    model = _model(nodes, {"a": (3,)}, "y", ["a"])
    got = woodpecker.compile(model, vendor=False).run({"a": np.array([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(got["d_a"], [3.0, 3.0, 3.0])
