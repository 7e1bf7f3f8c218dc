"""Channel shuffles in the blocked layout (woodpecker.passes.layout: channel_shuffle, slice): the rewrite, its
numerics through the reference interpreter and compiled against onnxruntime, odd channel counts and padded blocks."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.ir import ops
from woodpecker.passes.layout import to_blocked_layout


def _shuffle_nodes(src: str, c: int, groups: int, hw: tuple[int, int], out: str) -> list:
    return [("Reshape", [src, f"{out}_s1"], [f"{out}_r1"], {}),
            ("Transpose", [f"{out}_r1"], [f"{out}_t"], {"perm": [0, 2, 1, 3, 4]}),
            ("Reshape", [f"{out}_t", f"{out}_s2"], [out], {})]


def _shapes(c: int, groups: int, hw: tuple[int, int], out: str) -> dict:
    return {f"{out}_s1": np.array([1, groups, c // groups, *hw], np.int64), f"{out}_s2": np.array([1, c, *hw], np.int64)}


def _v2_unit(h, half: int, hw=(5, 7)):
    """ShuffleNetV2's unit twice: split -> (passthrough, 1x1 conv -> depthwise -> 1x1 conv) -> concat -> shuffle of 2
    groups; the first unit's input comes from a 1x1 convolution, the second's from the first's shuffle."""
    c = 2 * half
    inits = {"w0": h.rand(c, 16, 1, 1, seed=1), "split": np.array([half, half], np.int64)}
    nodes = [("Conv", ["x", "w0"], ["x0"], {})]
    src = "x0"
    for u in range(2):
        inits |= {f"wa{u}": h.rand(half, half, 1, 1, seed=10 + u), f"wd{u}": h.rand(half, 1, 3, 3, seed=20 + u),
                  f"wb{u}": h.rand(half, half, 1, 1, seed=30 + u), **_shapes(c, 2, hw, f"sh{u}")}
        nodes += [("Split", [src, "split"], [f"l{u}", f"r{u}"], {"axis": 1}),
                  ("Conv", [f"r{u}", f"wa{u}"], [f"a{u}"], {}), ("Relu", [f"a{u}"], [f"ar{u}"], {}),
                  ("Conv", [f"ar{u}", f"wd{u}"], [f"d{u}"], {"pads": [1, 1, 1, 1], "group": half}),
                  ("Conv", [f"d{u}", f"wb{u}"], [f"b{u}"], {}), ("Relu", [f"b{u}"], [f"br{u}"], {}),
                  ("Concat", [f"l{u}", f"br{u}"], [f"cat{u}"], {"axis": 1}),
                  *_shuffle_nodes(f"cat{u}", c, 2, hw, f"sh{u}")]
        src = f"sh{u}"
    inits["wy"] = h.rand(16, c, 1, 1, seed=40)
    nodes.append(("Conv", [src, "wy"], ["y"], {}))
    return h.onnx_graph(nodes, {"x": [1, 16, *hw]}, ["y"], inits)


def _v1_unit(h, mid: int, groups: int, cin: int, hw=(6, 5), last_groups: int = 1):
    """ShuffleNet v1's unit: grouped 1x1 conv -> ReLU -> shuffle of `groups` -> depthwise 3x3 -> 1x1 conv (of
    `last_groups` groups)."""
    inits = {"w1": h.rand(mid, cin // groups, 1, 1, seed=1), "wd": h.rand(mid, 1, 3, 3, seed=2),
             "w2": h.rand(cin, mid // last_groups, 1, 1, seed=3), **_shapes(mid, groups, hw, "sh")}
    nodes = [("Conv", ["x", "w1"], ["a"], {"group": groups}), ("Relu", ["a"], ["ar"], {}),
             *_shuffle_nodes("ar", mid, groups, hw, "sh"),
             ("Conv", ["sh", "wd"], ["d"], {"pads": [1, 1, 1, 1], "group": mid}),
             ("Conv", ["d", "w2"], ["y"], {"group": last_groups})]
    return h.onnx_graph(nodes, {"x": [1, cin, *hw]}, ["y"], inits)


@pytest.mark.parametrize("half", [58, 16, 20])
def test_v2_shuffles_and_their_halves_stay_blocked(h, half):
    g = _v2_unit(h, half)
    out = to_blocked_layout(g, 16, 16)
    h.assert_same(g, out)
    from woodpecker.passes.dce import eliminate_dead_code

    live = eliminate_dead_code(out)
    shuffles = [n for n in live.nodes if n.op == "channel_shuffle_nchwc"]
    ranges = {g: sorted((n.attrs["start"], n.attrs["stop"]) for n in shuffles if n.attrs["groups"] == g) for g in (1, 2)}
    # the first unit splits a convolution's output: two slices (one group); its shuffle is read as two halves (the
    # second unit's split), the second unit's whole (by the last convolution)
    assert ranges == {1: [(0, half), (half, 2 * half)], 2: [(0, half), (0, 2 * half), (half, 2 * half)]}
    assert all(n.attrs["channels"] == ((half, half) if n.attrs["groups"] == 2 else (2 * half,)) for n in shuffles)
    assert all(live.types[v].layout.startswith("NCHW") for n in shuffles for v in n.inputs)
    # one conversion into the blocked layout (the 16-channel input) and one out (the output): no NCHW shuffle left
    assert [n.op for n in live.nodes if n.op in ("reshape", "transpose", "concat", "slice")] == []
    assert [n.attrs["to_blocked"] for n in live.nodes if n.op == "layout_transform"] == [True, False]


@pytest.mark.parametrize("mid,groups,cin", [(60, 3, 48), (64, 8, 128), (36, 3, 48)])
def test_v1_shuffle_of_a_grouped_convolution_stays_blocked(h, mid, groups, cin):
    # the grouped convolutions run blocked (4-lane output blocks for 60 and 36 channels; 8 groups merged in pairs)
    g = _v1_unit(h, mid, groups, cin)
    out = to_blocked_layout(g, 16, 16)
    h.assert_same(g, out)
    (shuffle,) = [n for n in out.nodes if n.op == "channel_shuffle_nchwc"]
    assert shuffle.attrs["channels"] == (mid,) and shuffle.attrs["groups"] == groups
    assert out.types[shuffle.outputs[0]].shape == (1, -(-mid // 16), 6, 5, 16)


def test_a_grouped_convolution_reads_a_value_of_other_blocks_through_a_gather(h):
    """ShuffleNet v1's second grouped convolution: 20-channel groups need 4-lane input blocks, its input (the depthwise
    convolution's output) is in padded 16-lane blocks: one gather into 4-lane blocks, no NCHW in between."""
    from woodpecker.passes.dce import eliminate_dead_code

    g = _v1_unit(h, 60, 3, 48, last_groups=3)
    live = eliminate_dead_code(to_blocked_layout(g, 16, 16))
    h.assert_same(g, live)
    (reblock,) = [n for n in live.nodes if n.op == "channel_shuffle_nchwc" and n.attrs["groups"] == 1]
    assert reblock.attrs["channels"] == (60,) and live.types[reblock.outputs[0]].shape == (1, 15, 6, 5, 4)
    assert [n.attrs["groups"] for n in live.nodes if n.op == "conv2d_nchwc"] == [3, 3]
    assert len([n for n in live.nodes if n.op == "layout_transform"]) == 2  # the input in, the output out


def test_a_shuffle_of_a_plain_value_is_left_alone(h):
    # a model input (NCHW) shuffled and returned: nothing blocked to read from
    g = h.onnx_graph(_shuffle_nodes("x", 12, 3, (2, 2), "y"), {"x": [1, 12, 2, 2]}, ["y"], _shapes(12, 3, (2, 2), "y"))
    out = to_blocked_layout(g, 16, 16)
    h.assert_same(g, out)
    assert "channel_shuffle_nchwc" not in h.ops_of(out)


def test_shuffle_op_reference_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 58, 3, 4)).astype(np.float32), rng.standard_normal((1, 58, 3, 4)).astype(np.float32)
    cat = np.concatenate([a, b], axis=1)
    want = cat.reshape(1, 2, 58, 3, 4).transpose(0, 2, 1, 3, 4).reshape(1, 116, 3, 4)[:, 58:]
    blocked = [ops.block_channels(a, 16), ops.block_channels(b, 8)]  # sources may have different blocks
    attrs = {"channels": (58, 58), "groups": 2, "start": 58, "stop": 116, "block": 16}
    (got,) = ops.evaluate("channel_shuffle_nchwc", blocked, attrs)
    assert got.shape == (1, 4, 3, 4, 16)
    np.testing.assert_array_equal(ops.unblock_channels(got, 58), want)
    assert not np.any(ops.unblock_channels(got)[:, 58:])  # the padding lanes hold zeros
    source, channel = ops.shuffle_source(np.arange(4), (58, 58), 2)
    assert source.tolist() == [0, 1, 0, 1] and channel.tolist() == [0, 0, 1, 1]


def test_compiled_shuffles_match_onnxruntime():
    """End to end against onnxruntime: both ShuffleNets at a small size (odd 58/116 and 60-channel halves, padded
    blocks, 4- and 8-lane sources) run their shuffles as blocked kernels."""
    import onnxruntime as ort

    import woodpecker
    from woodpecker import models
    from woodpecker.measure.correctness import relative_error

    for name, kwargs in (("shufflenet_v2", {}), ("shufflenet_v1", {}), ("shufflenet_v1", {"groups": 8})):
        proto = models.build(name, image_size=40, num_classes=10, **kwargs)
        cm = woodpecker.compile(proto, vendor=False)
        assert any("channel_shuffle_nchwc" in c.func for c in cm.program.calls), name
        feed = cm.random_inputs(0)
        want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        assert relative_error(next(iter(cm.run(feed).values())), want) <= 1e-4, (name, kwargs)
