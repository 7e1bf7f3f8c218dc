"""Concatenation in place: the producers of a fire module's concat write into their slices of its output, the
compiled model computes the same numbers, and the concat is kept as a copy wherever a slice cannot hold an input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import woodpecker
from woodpecker.lowering.model import KernelCall, SliceStep, lower_graph
from woodpecker.models.builder import OnnxBuilder
from woodpecker.passes.pipeline import PassOptions, optimize
from woodpecker.frontend.onnx import import_onnx


def _fire(image: int = 12, squeeze: int = 8, expand: int = 16, second_concat: bool = False) -> onnx.ModelProto:
    """SqueezeNet's fire module: squeeze 1x1, expand 1x1 and 3x3, concat, then a 1x1 convolution reads it."""
    b = OnnxBuilder("fire", 0)
    x = b.input("input", [1, 8, image, image])
    s = b.relu(b.conv(x, 8, squeeze, 1))
    e1 = b.relu(b.conv(s, squeeze, expand, 1))
    e3 = b.relu(b.conv(s, squeeze, expand, 3))
    cat = b.op("Concat", [e1, e3], axis=1)
    y = b.relu(b.conv(cat, 2 * expand, 16, 1))
    if second_concat:  # e1 also feeds a second concat: it can be placed in one of them only
        y = b.relu(b.conv(b.op("Concat", [y, e1], axis=1), 16 + expand, 16, 1))
    return b.model(y, [1, 16, image, image])


def _plan(proto, blocked: bool = True):
    graph = optimize(import_onnx(proto), PassOptions(blocked_layout=blocked, concat_in_place=True))
    concats = [n for n in graph.nodes if n.op == "concat"]
    return graph, concats, lower_graph(graph)


@pytest.mark.parametrize("blocked", [True, False], ids=["nchwc", "nchw"])
def test_fire_module_concat_is_written_in_place_and_computes_the_same(blocked):
    proto = _fire()
    _, concats, lowered = _plan(proto, blocked)
    assert [c.attr("in_place") for c in concats] == [True]
    slices = [s for s in lowered.steps if isinstance(s, SliceStep)]
    assert [s.offset_bytes for s in slices] == [0, 16 * 12 * 12 * 4]
    assert not any(lowered.tasks[s.task].name.startswith("concat") for s in lowered.steps if isinstance(s, KernelCall))
    cm = woodpecker.compile(proto, vendor=False, blocked_layout=blocked)
    assert cm.program.slices and len(cm.program.calls) == len(cm.executor._calls)
    feed = cm.random_inputs(0)
    import onnxruntime as ort

    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    got = next(iter(cm.run(feed).values()))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    # saved and loaded, the slices come back
    assert woodpecker.runtime.executor.Program.from_json(cm.program.to_json()) == cm.program


def test_an_input_in_two_concats_is_placed_in_one_only():
    _, concats, _ = _plan(_fire(second_concat=True))
    assert [bool(c.attr("in_place")) for c in concats] == [True, False]


def test_a_slice_off_the_vector_alignment_keeps_the_copy():
    # 3x3 images, 5 channels in NCHW: the second slice starts 180 bytes in, off the 64-byte alignment
    _, concats, lowered = _plan(_fire(image=3, expand=5), blocked=False)
    assert [c.attr("in_place") for c in concats] == [None]
    assert not any(isinstance(s, SliceStep) for s in lowered.steps)


def test_a_model_input_or_output_is_never_a_slice():
    b = OnnxBuilder("cat_input", 0)
    x = b.input("input", [1, 16, 4, 4])
    y = b.relu(b.conv(x, 16, 16, 1))
    proto = b.model(b.relu(b.conv(b.op("Concat", [x, y], axis=1), 32, 16, 1)), [1, 16, 4, 4])
    _, concats, _ = _plan(proto, blocked=False)
    assert [c.attr("in_place") for c in concats] == [None]


def test_the_pass_is_on_for_the_host_cpu_only():
    from woodpecker.targets import resolve

    assert resolve("host").pass_options().concat_in_place
    assert not resolve("p100").pass_options().concat_in_place
