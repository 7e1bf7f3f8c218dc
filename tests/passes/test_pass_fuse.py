"""Fusion: anchors absorb their elementwise epilogues; remaining elementwise ops merge into chains."""

from __future__ import annotations

import numpy as np

from woodpecker.passes.fold_batchnorm import fold_batchnorm
from woodpecker.passes.fuse import fuse_elementwise, fuse_epilogues
from woodpecker.passes.layout import to_blocked_layout


def _groups(graph):
    return [[m.op for m in n.body] for n in graph.nodes if n.op == "fused"]


def _conv_bias_relu_residual(h, blocked: bool):
    inits = dict(w1=h.rand(16, 16, 3, 3, seed=1), b1=h.rand(16, seed=2), w2=h.rand(16, 16, 3, 3, seed=3),
                 b2=h.rand(16, seed=4))
    g = h.onnx_graph(
        [("Conv", ["x", "w1", "b1"], ["c1"], {"pads": [1, 1, 1, 1]}), ("Relu", ["c1"], ["r"], {}),
         ("Conv", ["r", "w2", "b2"], ["c2"], {"pads": [1, 1, 1, 1]}), ("Add", ["c2", "x"], ["a"], {}),
         ("Relu", ["a"], ["y"], {})],
        {"x": [1, 16, 6, 6]}, ["y"], inits)
    return g, (to_blocked_layout(g) if blocked else g)


def test_conv_bias_relu_and_residual_groups(h):
    g, _ = _conv_bias_relu_residual(h, blocked=False)
    out = fuse_epilogues(g)
    h.assert_same(g, out)
    assert _groups(out) == [["conv2d", "add", "relu"], ["conv2d", "add", "add", "relu"]]
    assert [n.op for n in out.nodes] == ["fused", "fused"]
    first, second = out.nodes
    assert first.attrs["anchor"] == "conv2d"
    # inputs: activation, weight, bias (and the residual for the second group); one output each
    assert first.inputs[0] == "x" and len(first.inputs) == 3
    assert "x" in second.inputs and len(second.inputs) == 4
    assert second.outputs == tuple(out.outputs)


def test_blocked_conv_groups_keep_the_layout_transforms_outside(h):
    g, blocked = _conv_bias_relu_residual(h, blocked=True)
    out = fuse_epilogues(blocked)
    h.assert_same(g, out)
    assert _groups(out) == [["conv2d_nchwc", "add", "relu"], ["conv2d_nchwc", "add", "add", "relu"]]
    assert [n.op for n in out.nodes] == ["layout_transform", "fused", "fused", "layout_transform"]


def test_swish_diamond_after_a_conv_is_one_group(h):
    inits = dict(w=h.rand(8, 8, 3, 3, seed=1), b=h.rand(8, seed=2))
    g = h.onnx_graph([("Conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}), ("Sigmoid", ["c"], ["s"], {}),
                      ("Mul", ["c", "s"], ["y"], {})], {"x": [1, 8, 5, 5]}, ["y"], inits)
    out = fuse_epilogues(g)
    h.assert_same(g, out)
    assert _groups(out) == [["conv2d", "add", "sigmoid", "mul"]]
    assert len(out.nodes) == 1


def test_value_used_outside_the_group_ends_it(h):
    inits = dict(w=h.rand(8, 8, 1, 1, seed=1))
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {}), ("Relu", ["c"], ["r"], {}), ("Exp", ["r"], ["e"], {}),
                      ("Sigmoid", ["c"], ["s"], {}), ("Transpose", ["r"], ["t"], {"perm": [0, 1, 3, 2]})],
                     {"x": [1, 8, 4, 4]}, ["e", "s", "t"], inits)
    out = fuse_epilogues(g)
    h.assert_same(g, out)
    # c feeds relu and sigmoid, r feeds exp and a transpose: the conv stays alone
    assert all(m != "conv2d" for grp in _groups(out) for m in grp[1:])
    assert not any(grp[0] == "conv2d" for grp in _groups(out))


def test_broadcast_to_a_larger_shape_ends_the_group(h):
    inits = dict(w=h.rand(6, 10, seed=1))
    g = h.onnx_graph([("Gemm", ["x", "w"], ["d"], {"transB": 1}), ("Relu", ["d"], ["r"], {}),
                      ("Add", ["r", "big"], ["y"], {})], {"x": [1, 10], "big": [4, 6]}, ["y"], inits)
    out = fuse_epilogues(g)
    h.assert_same(g, out)
    assert _groups(out) == [["dense", "relu"]]


def test_graph_output_in_the_middle_ends_the_group(h):
    inits = dict(w=h.rand(6, 10, seed=1))
    g = h.onnx_graph([("Gemm", ["x", "w"], ["d"], {"transB": 1}), ("Relu", ["d"], ["r"], {}),
                      ("Exp", ["r"], ["y"], {})], {"x": [2, 10]}, ["r", "y"], inits)
    out = fuse_epilogues(g)
    h.assert_same(g, out)
    assert _groups(out) == [["dense", "relu"]]
    assert [n.op for n in out.nodes] == ["fused", "exp"]


def test_fuse_elementwise_chains(h):
    g = h.onnx_graph([("Exp", ["x"], ["a"], {}), ("Mul", ["a", "z"], ["b"], {}), ("Tanh", ["b"], ["c"], {}),
                      ("Softmax", ["c"], ["s"], {"axis": -1}), ("Sigmoid", ["s"], ["t"], {}),
                      ("Neg", ["t"], ["y"], {})], {"x": [2, 5], "z": [2, 5]}, ["y"])
    epi = fuse_epilogues(g)
    out = fuse_elementwise(epi)
    h.assert_same(g, out)
    groups = _groups(out)
    assert ["exp", "mul", "tanh"] in groups
    assert any(grp[-2:] == ["sigmoid", "neg"] for grp in groups)


def test_fused_node_runs_in_the_interpreter_like_its_members(h):
    from woodpecker import models
    from woodpecker.frontend.onnx import import_onnx

    g = to_blocked_layout(fold_batchnorm(import_onnx(models.build("mobilenet_v2", image_size=32))))
    out = fuse_elementwise(fuse_epilogues(g))
    h.assert_same(g, out, rtol=1e-3, atol=1e-3)
    groups = _groups(out)
    # the depthwise convolutions take their bias and ReLU6 (clip); residual adds join the projection convs
    assert ["depthwise_conv2d_nchwc", "add", "clip"] in groups
    assert ["conv2d_nchwc", "add", "add"] in groups
    assert not any(n.op in ("add", "clip", "relu") for n in out.nodes)
    assert np.all([len(n.outputs) == 1 for n in out.nodes])


def test_a_group_ends_at_a_rounding_into_a_narrow_type():
    """float16 ops round after each op (to_format): bit arithmetic that reads its argument several times, so a chain
    of them fused into one expression would grow exponentially (minutes of compile); each rounding ends a group."""
    from onnx import TensorProto, helper

    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.passes.pipeline import PassOptions, optimize

    nodes = [helper.make_node(op, [f"v{i}"], [f"v{i + 1}"]) for i, op in enumerate(["Tanh", "Exp", "Sin", "Tanh"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("v0", TensorProto.FLOAT16, [4, 8])],
                              [helper.make_tensor_value_info("v4", TensorProto.FLOAT16, [4, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    g = optimize(import_onnx(model), PassOptions(blocked_layout=False))
    bodies = [[m.op for m in n.body] for n in g.nodes if n.op == "fused"]
    assert sum(op == "to_format" for n in g.nodes for op in ([m.op for m in n.body] or [n.op])) == 4
    assert all("to_format" not in body[:-1] for body in bodies), bodies


def _fused_ops(model):
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.passes.pipeline import PassOptions, optimize

    g = optimize(import_onnx(model), PassOptions(blocked_layout=False))
    return [[m.op for m in n.body] or [n.op] for n in g.nodes]


def _chain(ops_, shape=(13, 2)):
    from onnx import TensorProto, helper

    nodes = [helper.make_node(op, [f"v{i}"], [f"v{i + 1}"]) for i, op in enumerate(ops_)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("v0", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info(f"v{len(ops_)}", TensorProto.FLOAT, list(shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_group_is_cut_before_a_third_nested_polynomial_function():
    """exp/erf/tanh/sigmoid lower to polynomials that read their argument tens of times; fused into one expression,
    a nested chain of them grows exponentially (the fuzz campaign's seed 12012, Tanh-Erf-Sin-Selu-Tanh, compiled for
    minutes). Two nested fit in a group (GELU, Mish); the third starts a new one."""
    groups = _fused_ops(_chain(["Tanh", "Erf", "Sin", "Selu", "Tanh"]))
    polynomial = {"tanh", "erf", "exp", "sigmoid"}
    assert max(sum(op in polynomial for op in g) for g in groups) == 2, groups
    assert sum(op in polynomial for g in groups for op in g) == 4, groups  # every op is still in some kernel


def test_mish_and_gelu_stay_one_group():
    assert len(_fused_ops(_chain(["Softplus", "Tanh"]))) == 1
    assert len(_fused_ops(_chain(["Erf", "Relu", "Sigmoid"]))) == 1


def test_the_cut_chain_computes_what_onnxruntime_does():
    import onnxruntime as ort

    import woodpecker

    model = _chain(["Tanh", "Erf", "Sin", "Selu", "Tanh", "Sigmoid", "Exp"])
    x = np.random.default_rng(0).standard_normal((13, 2)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"v0": x})[0]
    got = woodpecker.compile(model, vendor=False).run({"v0": x})["v7"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_integer_mod_chains_are_cut_by_their_reads():
    """Integer Mod lowers to a zero-guarded remainder that reads its divisor up to 11 times: a chain of them is cut
    like the polynomial functions (6 nested would be an expression of about 11**6 leaves), and still computes what
    numpy does."""
    from onnx import TensorProto, helper, numpy_helper

    import woodpecker

    divisors = [7, -5, 3, 11, -2, 9]
    nodes = [helper.make_node("Mod", [f"v{i}", f"c{i}"], [f"v{i + 1}"]) for i in range(len(divisors))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("v0", TensorProto.INT32, [4, 8])],
        [helper.make_tensor_value_info(f"v{len(divisors)}", TensorProto.INT32, [4, 8])],
        initializer=[numpy_helper.from_array(np.full((4, 8), d, dtype=np.int32), f"c{i}")
                     for i, d in enumerate(divisors)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    groups = _fused_ops(model)
    assert max(sum(op == "mod" for op in g) for g in groups) <= 3, groups
    x = np.random.default_rng(1).integers(-1000, 1000, (4, 8)).astype(np.int32)
    want = x
    for d in divisors:
        want = np.mod(want, np.int32(d))
    np.testing.assert_array_equal(woodpecker.compile(model, vendor=False).run({"v0": x})[f"v{len(divisors)}"], want)
