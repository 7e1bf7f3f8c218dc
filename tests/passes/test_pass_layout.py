"""Blocked layout: convolution chains run in NCHW[b]c with conversions only at the chain's boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.passes.fold_batchnorm import fold_batchnorm
from woodpecker.passes.layout import block_for, block_groups, merge_groups, to_blocked_layout


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
    # padding to whole AVX-512 registers: narrower blocks are not used, small inputs stay whole
    assert [block_for(c, 16, 16) for c in (64, 24, 12, 3, 8, 58, 1000, 6)] == [16, 16, 16, 3, 8, 16, 16, 6]
    # AVX2: 8 lanes are a whole register; 4-lane blocks are padded to 8
    assert [block_for(c, 16, 8) for c in (64, 24, 116, 58, 1000)] == [16, 8, 8, 8, 8]


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


def test_odd_channels_and_narrow_grouped_convolutions_stay_plain(h):
    """58 channels (no block divides them, padding off) and 4 groups of 4 channels (a 16-channel block would hold
    four groups: 4x the work, above GROUPED_WASTE_MAX) stay in NCHW."""
    inits = dict(w1=h.rand(58, 16, 1, 1, seed=1), w2=h.rand(16, 4, 3, 3, seed=2))
    g = h.onnx_graph([("Conv", ["x", "w1"], ["c1"], {}), ("Relu", ["c1"], ["r"], {}),
                      ("Conv", ["x", "w2"], ["c2"], {"group": 4, "pads": [1, 1, 1, 1]})],
                     {"x": [1, 16, 5, 5]}, ["r", "c2"], inits)
    out = to_blocked_layout(g)
    h.assert_same(g, out)
    assert [n.op for n in out.nodes] == ["conv2d", "relu", "conv2d"]


def test_block_groups_and_merged_weights():
    # groups of whole blocks keep their count; narrower ones merge until each holds whole blocks, at most 2 into one
    assert block_groups(32, 32, 32) == 32  # ResNeXt stage 3: 512 channels, 32 groups of 16
    assert block_groups(32, 64, 64) == 32  # stage 4: groups of 32 channels, two blocks each
    assert block_groups(32, 16, 16) == 16  # stage 2: groups of 8 merged in pairs
    assert block_groups(32, 8, 8) is None  # stage 1: groups of 4, four to a block
    assert block_groups(6, 3, 3) == 3  # RegNet-style 48 channels in groups of 8
    w = np.array([1, 5, 9, 13], np.float32).reshape(4, 1, 1, 1)  # 4 groups of one input and one output channel
    m = merge_groups(w, 4, 2)  # merged into 2 groups: each output sees 2 inputs, its own at its group's offset
    assert m[:, :, 0, 0].tolist() == [[1, 0], [0, 5], [9, 0], [0, 13]]
    assert merge_groups(w, 4, 4) is w


@pytest.mark.parametrize("c,k,groups,stride", [(32, 32, 2, 1), (32, 64, 4, 2), (64, 32, 2, 1), (48, 48, 6, 2),
                                               (64, 64, 8, 1)])
def test_grouped_convolutions_of_whole_blocks_run_blocked(h, c, k, groups, stride):
    """Groups of whole channel blocks (16 or 32 channels; 8 merged in pairs) run as a blocked convolution with a
    groups attribute, between blocked neighbours with no conversion, and compute the same (odd 7x9 image)."""
    inits = dict(w0=h.rand(c, 8, 1, 1, seed=1), wg=h.rand(k, c // groups, 3, 3, seed=2), wk=h.rand(16, k, 1, 1, seed=3))
    g = h.onnx_graph([("Conv", ["x", "w0"], ["a"], {}), ("Relu", ["a"], ["ar"], {}),
                      ("Conv", ["ar", "wg"], ["b"], {"group": groups, "pads": [1, 1, 1, 1], "strides": [stride] * 2}),
                      ("Relu", ["b"], ["br"], {}), ("Conv", ["br", "wk"], ["y"], {})],
                     {"x": [1, 8, 7, 9]}, ["y"], inits)
    out = to_blocked_layout(g)
    h.assert_same(g, out)
    convs = [n for n in out.nodes if n.op == "conv2d_nchwc"]
    assert len(convs) == 3 and len(_transforms(out)) == 2
    assert convs[1].attrs["groups"] == block_groups(groups, c // 16, k // 16)


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


def _padded_chain(h, c: int = 58, k: int = 116, tail: tuple = ()):
    """16 -> c (1x1) -> ReLU -> depthwise 3x3 -> c -> k (3x3, stride 2) + bias -> [tail] -> global pool -> flatten:
    channel counts no 16-lane block divides."""
    inits = dict(w1=h.rand(c, 16, 1, 1, seed=1), wd=h.rand(c, 1, 3, 3, seed=2), w2=h.rand(k, c, 3, 3, seed=3),
                 b2=h.rand(k, seed=4), k2=h.rand(1, k, 1, 1, seed=5, low=0.5, high=2))
    nodes = [("Conv", ["x", "w1"], ["c1"], {}), ("Relu", ["c1"], ["r1"], {}),
             ("Conv", ["r1", "wd"], ["d"], {"pads": [1, 1, 1, 1], "group": c}),
             ("Conv", ["d", "w2", "b2"], ["c2"], {"pads": [1, 1, 1, 1], "strides": [2, 2]}), *tail,
             ("GlobalAveragePool", [tail[-1][2][0] if tail else "c2"], ["gp"], {}), ("Flatten", ["gp"], ["y"], {})]
    return h.onnx_graph(nodes, {"x": [1, 16, 7, 9]}, ["y"], inits)


@pytest.mark.parametrize("pad_to", [16, 8])
def test_padded_blocks_compute_the_same(h, pad_to):
    g = _padded_chain(h, tail=(("Sigmoid", ["c2"], ["s"], {}), ("Mul", ["s", "k2"], ["m"], {})))
    out = to_blocked_layout(g, 16, pad_to)
    h.assert_same(g, out)
    convs = [n for n in out.nodes if n.op in ("conv2d_nchwc", "depthwise_conv2d_nchwc")]
    assert len(convs) == 3 and all(out.types[n.outputs[0]].shape[-1] == pad_to for n in convs)
    # 58 channels in 4 (or 8) blocks, 116 in 8 (or 15): the last block padded
    assert [out.types[n.outputs[0]].shape[1] for n in convs] == ([4, 4, 8] if pad_to == 16 else [8, 8, 15])
    # into the blocked layout once (16 channels), out once: cropped back to 116 before the flatten
    lts = _transforms(out)
    assert len(lts) == 2 and lts[1].attrs.get("channels") == 116 and "channels" not in lts[0].attrs


def test_padded_input_and_runtime_operand_are_padded_with_zeros(h):
    # a 20-channel model input into a convolution; a 20-channel run-time operand added to its blocked output
    inits = dict(w=h.rand(20, 20, 3, 3, seed=1))
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}), ("Add", ["c", "x"], ["a"], {}),
                      ("Conv", ["a", "w"], ["y"], {"pads": [1, 1, 1, 1]})],
                     {"x": [1, 20, 5, 5]}, ["y"], inits)
    out = to_blocked_layout(g, 16, 16)
    h.assert_same(g, out)
    into = [n for n in _transforms(out) if n.attrs["to_blocked"]]
    assert len(into) == 1 and into[0].attrs["channels"] == 20 and out.types[into[0].outputs[0]].shape == (1, 2, 5, 5, 16)


@pytest.mark.parametrize("op", ["Div", "Reciprocal", "Log"])
def test_ops_that_can_make_padding_non_finite_see_it_cropped(h, op):
    # p = c * c + k is at least 0.5 in the real channels and 0 in the padding lanes; k / p, 1 / p and log p are
    # inf or NaN there, and inf * 0 = NaN would reach every real channel of the next convolution: so the op runs on
    # the cropped NCHW value
    inits = dict(w=h.rand(24, 24, 1, 1, seed=1), k=h.rand(1, 24, 1, 1, seed=2, low=0.5, high=2))
    first = ("Div", ["k", "p"], ["e"], {}) if op == "Div" else (op, ["p"], ["e"], {})
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {}), ("Mul", ["c", "c"], ["sq"], {}), ("Add", ["sq", "k"], ["p"], {}),
                      first, ("Conv", ["e", "w"], ["y"], {})],
                     {"x": [1, 24, 4, 4]}, ["y"], inits)
    out = to_blocked_layout(g, 16, 16)
    h.assert_same(g, out)
    unsafe = next(n for n in out.nodes if n.op == ("div" if op == "Div" else op.lower()))
    assert out.types[unsafe.outputs[0]].layout == ""
    # cropped before the op and after the last convolution
    assert [n.attrs.get("channels") for n in _transforms(out) if not n.attrs["to_blocked"]] == [24, 24]


def test_concat_of_padded_values_is_gathered_into_blocks(h):
    # 24 + 24 channels: each padded to 32, so a blocked concat would put the second at channel 32; the real channels
    # are gathered into the concatenation's own blocks instead (48: three whole blocks), no NCHW in between
    inits = dict(w1=h.rand(24, 16, 1, 1, seed=1), w2=h.rand(24, 16, 3, 3, seed=2), w3=h.rand(16, 48, 1, 1, seed=3))
    g = h.onnx_graph([("Conv", ["x", "w1"], ["a"], {}), ("Conv", ["x", "w2"], ["b"], {"pads": [1, 1, 1, 1]}),
                      ("Concat", ["a", "b"], ["cat"], {"axis": 1}), ("Conv", ["cat", "w3"], ["y"], {})],
                     {"x": [1, 16, 6, 6]}, ["y"], inits)
    out = to_blocked_layout(g, 16, 16)
    h.assert_same(g, out)
    from woodpecker.passes.dce import eliminate_dead_code

    live = eliminate_dead_code(out)
    (cat,) = [n for n in live.nodes if n.op == "channel_shuffle_nchwc"]
    assert cat.attrs["channels"] == (24, 24) and cat.attrs["groups"] == 1 and (cat.attrs["start"], cat.attrs["stop"]) == (0, 48)
    assert live.types[cat.outputs[0]].shape == (1, 3, 6, 6, 16)
    assert "concat" not in h.ops_of(live) and len(_transforms(live)) == 2  # the input in, the output out


def test_padded_blocks_compiled_match_onnxruntime():
    # odd everything: 20 input channels (padded on the way in), 58 and 116 in the chain, a 20-channel branch
    # (cropped on the way out), a 9x11 image, and a 1000-class head after global pooling
    import onnxruntime as ort

    import woodpecker
    from woodpecker.models.builder import OnnxBuilder

    b = OnnxBuilder("padded", 0)
    x = b.input("input", [1, 20, 9, 11])
    y = b.relu(b.conv(x, 20, 58, 1))
    y = b.conv(y, 58, 58, 3, 2, groups=58)
    y = b.relu(b.conv(y, 58, 116, 3))
    head = b.conv(b.op("GlobalAveragePool", [y]), 116, 1000, 1)
    side = b.conv(y, 116, 20, 1)
    proto = b.model(b.op("Add", [b.op("Flatten", [head]), b.op("ReduceMean", [side], axes=[1, 2, 3], keepdims=0)]),
                    [1, 1000])
    cm = woodpecker.compile(proto, vendor=False)
    lts = [c.func for c in cm.program.calls if "layout_transform" in c.func]
    assert lts, "the chain runs in the blocked layout"
    feed = cm.random_inputs(0)
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    got = next(iter(cm.run(feed).values()))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(ref))))


def test_grouped_blocks_compiled_match_onnxruntime():
    """Compiled end to end, against onnxruntime: groups of 16 channels (stride 1, odd image), of 8 merged in pairs
    (stride 2), of 32 (two blocks a group), of 4 (NCHW), each between blocked 1x1 convolutions."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import woodpecker
    from woodpecker.measure.correctness import relative_error

    rng = np.random.default_rng(3)
    for c, groups, stride, hw in ((128, 8, 1, (9, 11)), (64, 8, 2, (12, 7)), (128, 4, 1, (7, 7)), (64, 16, 1, (6, 5))):
        inits = [numpy_helper.from_array(rng.standard_normal((c, 16, 1, 1)).astype(np.float32), "w0"),
                 numpy_helper.from_array(rng.standard_normal((c, c // groups, 3, 3)).astype(np.float32), "wg"),
                 numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "bg"),
                 numpy_helper.from_array(rng.standard_normal((16, c, 1, 1)).astype(np.float32), "w2")]
        nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]), helper.make_node("Relu", ["a"], ["ar"]),
                 helper.make_node("Conv", ["ar", "wg", "bg"], ["b"], group=groups, pads=[1, 1, 1, 1],
                                  strides=[stride] * 2),
                 helper.make_node("Relu", ["b"], ["br"]), helper.make_node("Conv", ["br", "w2"], ["y"])]
        oh, ow = [(v - 1) // stride + 1 for v in hw]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, *hw])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, oh, ow])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        x = rng.standard_normal((1, 16, *hw)).astype(np.float32)
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        cm = woodpecker.compile(model, vendor=False)
        assert relative_error(cm.run({"x": x})["y"], want) <= 1e-4, (c, groups, stride)
        names = [k.name for k in cm.kernels]
        assert sum("layout_transform" in n for n in names) == (4 if c // groups == 4 else 2), (c, groups, names)


def _conv_graph(h, c: int, k: int, hw: int, r: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1):
    pad = dilation * (r // 2)
    inits = dict(w=h.rand(k, c // groups, r, r, seed=4), b=h.rand(k, seed=5))
    return h.onnx_graph([("Conv", ["x", "w", "b"], ["c"], {"pads": [pad] * 4, "strides": [stride] * 2,
                                                           "group": groups, "dilations": [dilation] * 2}),
                         ("Relu", ["c"], ["y"], {})], {"x": [1, c, hw, hw]}, ["y"], inits)


def test_three_by_three_stride_one_convolutions_run_as_winograd_where_it_pays(h):
    """3x3, stride 1, one group, at least 16 channels each way and an 8x8 output: conv2d_winograd_nchwc with the
    transformed weight [36, K/ob, C/ib, ib, ob] (40 channels padded to 48); the rest stay direct, and so does
    everything without the option (simulated targets)."""
    g = _conv_graph(h, 40, 32, 9)
    out = to_blocked_layout(g, 16, 16, use_winograd=True)
    h.assert_same(g, out)
    (conv,) = [n for n in out.nodes if n.op.startswith("conv2d")]
    assert conv.op == "conv2d_winograd_nchwc" and out.types[conv.inputs[1]].shape == (36, 2, 3, 16, 16)
    for case in ((40, 32, 9, 1), (40, 32, 9, 5), (40, 32, 9, 3, 2), (64, 64, 9, 3, 1, 2), (8, 32, 9),
                 (32, 12, 9), (32, 32, 7), (40, 32, 9, 3, 1, 1, 2)):
        g = _conv_graph(h, *case)
        out = to_blocked_layout(g, 16, 16, use_winograd=True)
        assert [n.op for n in out.nodes if n.op.startswith("conv2d")] == ["conv2d_nchwc"], case
    assert [n.op for n in to_blocked_layout(_conv_graph(h, 40, 32, 9), 16, 16).nodes
            if n.op.startswith("conv2d")] == ["conv2d_nchwc"]
