"""Blocked layout: convolution chains run in NCHW[b]c with conversions only at the chain's boundaries."""

from __future__ import annotations

import pytest

from woodpecker.passes.fold_batchnorm import fold_batchnorm
from woodpecker.passes.layout import block_for, to_blocked_layout


def _transforms(graph):
    return [n for n in graph.nodes if n.op == "layout_transform"]


def _residual(h, c=16, k=16):
    inits = dict(w1=h.rand(k, c, 3, 3, seed=1), w2=h.rand(c, k, 3, 3, seed=2), b2=h.rand(c, seed=3))
    return h.onnx_graph(
        [("Conv", ["x", "w1"], ["c1"], {"pads": [1, 1, 1, 1]}), ("Relu", ["c1"], ["r"], {}),
         ("Conv", ["r", "w2", "b2"], ["c2"], {"pads": [1, 1, 1, 1]}), ("Add", ["c2", "x"], ["y"], {})],
        {"x": [1, c, 6, 6]}, ["y"], inits)


def test_block_for():
    assert [block_for(c) for c in (64, 24, 12, 3, 8, 58, 1000, 6)] == [16, 8, 4, 3, 8, None, 8, 6]
    assert block_for(64, max_block=8) == 8


def test_conv_relu_conv_add_chain_converts_once_each_way(h):
    g = _residual(h)
    out = to_blocked_layout(g)
    h.assert_same(g, out)
    lts = _transforms(out)
    assert len(lts) == 2
    first, last = lts
    assert out.nodes[0] is first and first.attrs["to_blocked"] and first.inputs == ("x",)
    assert out.nodes[-1] is last and not last.attrs["to_blocked"] and last.outputs == out.outputs
    assert [n.op for n in out.nodes[1:-1]] == ["conv2d_nchwc", "relu", "conv2d_nchwc", "add", "add"]
    for n in out.nodes[1:-1]:
        assert out.types[n.outputs[0]].layout == "NCHW16c"
    assert out.types[out.outputs[0]].layout == ""


def test_mixed_blocks(h):
    # 16 -> 24 -> 16 channels: blocks 16, 8, 16; the add of two differently blocked values runs in NCHW
    g = _residual(h, c=16, k=24)
    out = to_blocked_layout(g)
    h.assert_same(g, out)
    assert {n.attrs["block"] for n in _transforms(out)} <= {8, 16}


def test_max_block(h):
    g = _residual(h)
    out = to_blocked_layout(g, max_block=8)
    h.assert_same(g, out)
    assert all(n.attrs["block"] == 8 for n in _transforms(out))
    assert all(out.types[v].shape[-1] == 8 for n in out.nodes if n.op == "conv2d_nchwc" for v in n.outputs)


def test_depthwise_pool_and_concat_stay_blocked(h):
    inits = dict(w1=h.rand(16, 3, 3, 3, seed=1), wd=h.rand(16, 1, 3, 3, seed=2), w2=h.rand(16, 16, 1, 1, seed=3))
    g = h.onnx_graph(
        [("Conv", ["x", "w1"], ["c1"], {"pads": [1, 1, 1, 1]}),
         ("Conv", ["c1", "wd"], ["d"], {"pads": [1, 1, 1, 1], "group": 16}),
         ("Clip", ["d"], ["d6"], {}),
         ("MaxPool", ["d6"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
         ("AveragePool", ["c1"], ["a"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
         ("Conv", ["p", "w2"], ["c2"], {}),
         ("Concat", ["c2", "a"], ["cat"], {"axis": 1}),
         ("GlobalAveragePool", ["cat"], ["gp"], {}),
         ("Flatten", ["gp"], ["y"], {})],
        {"x": [1, 3, 8, 8]}, ["y"], inits)
    out = to_blocked_layout(g)
    h.assert_same(g, out)
    ops = [n.op for n in out.nodes]
    assert "depthwise_conv2d_nchwc" in ops and "conv2d" not in ops
    # one conversion in (the 3-channel input, block 3) and one out (before the flatten)
    lts = _transforms(out)
    assert len(lts) == 2 and lts[0].attrs["block"] == 3 and not lts[1].attrs["to_blocked"]
    for n in out.nodes:
        if n.op in ("max_pool2d", "avg_pool2d", "concat", "global_avg_pool", "clip"):
            assert out.types[n.outputs[0]].layout.startswith("NCHW"), n.op


def test_odd_channels_and_grouped_convolutions_stay_plain(h):
    inits = dict(w1=h.rand(58, 16, 1, 1, seed=1), w2=h.rand(16, 8, 3, 3, seed=2))
    g = h.onnx_graph([("Conv", ["x", "w1"], ["c1"], {}), ("Relu", ["c1"], ["r"], {}),
                      ("Conv", ["x", "w2"], ["c2"], {"group": 2, "pads": [1, 1, 1, 1]})],
                     {"x": [1, 16, 5, 5]}, ["r", "c2"], inits)
    out = to_blocked_layout(g)
    h.assert_same(g, out)
    assert [n.op for n in out.nodes] == ["conv2d", "relu", "conv2d"]


@pytest.mark.parametrize("const_shape", [[16, 1, 1], [1, 16, 1, 1], [1], [6, 6], [1, 16, 6, 6]])
def test_elementwise_with_constants_of_every_broadcast_shape(h, const_shape):
    inits = dict(w=h.rand(16, 16, 3, 3, seed=1), k=h.rand(*const_shape, seed=4, low=0.5, high=2))
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}), ("Mul", ["c", "k"], ["m"], {}),
                      ("Sub", ["k", "m"], ["s"], {}), ("Conv", ["s", "w"], ["y"], {"pads": [1, 1, 1, 1]})],
                     {"x": [1, 16, 6, 6]}, ["y"], inits)
    out = to_blocked_layout(g)
    h.assert_same(g, out)
    assert len(_transforms(out)) == 2


def test_runtime_broadcast_operand_goes_back_to_plain(h):
    # squeeze-and-excitation: a [1, C, 1, 1] run-time scale multiplies the blocked activation
    inits = dict(w=h.rand(16, 16, 3, 3, seed=1))
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}), ("GlobalAveragePool", ["c"], ["gp"], {}),
                      ("Sigmoid", ["gp"], ["s"], {}), ("Mul", ["c", "s"], ["y"], {}),
                      ("Mul", ["c", "se"], ["z"], {})],
                     {"x": [1, 16, 6, 6], "se": [1, 16, 1, 1]}, ["y", "z"], inits)
    out = to_blocked_layout(g)
    h.assert_same(g, out)


def test_resnet_block_after_batchnorm_folding(h):
    from woodpecker import models
    from woodpecker.frontend.onnx import import_onnx

    g = fold_batchnorm(import_onnx(models.build("resnet18", image_size=32)))
    out = to_blocked_layout(g)
    h.assert_same(g, out, rtol=1e-3, atol=1e-3)
    lts = _transforms(out)
    # into the blocked layout once (the image), out once (before the flatten and dense layer)
    assert sum(n.attrs["to_blocked"] for n in lts) == 1 and sum(not n.attrs["to_blocked"] for n in lts) == 1
