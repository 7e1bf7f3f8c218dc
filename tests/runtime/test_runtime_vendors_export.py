"""Regions exported to ONNX for onnxruntime: blocked (NCHWc) values stay in NCHW between the nodes of one export,
so a merged run converts layouts at its edges only, and the numbers match the region's reference."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from woodpecker.frontend.onnx import import_onnx
from woodpecker.lowering.model import lower_graph
from woodpecker.passes.pipeline import optimize
from woodpecker.planner.choices import reference_output
from woodpecker.planner.merge import merge_regions
from woodpecker.planner.regions import regions_of
from woodpecker.runtime.vendors import OrtChoice
from woodpecker.runtime.vendors.export_onnx import export_region
from woodpecker.testing.models import tiny_cnn


@pytest.fixture(scope="module")
def lowered():
    return lower_graph(optimize(import_onnx(tiny_cnn(image_size=20, channels=16))))


def _ops(region, constants) -> Counter:
    model = export_region(region.body, region.inputs, region.output, region.types, constants)
    return Counter(n.op_type for n in model.graph.node)


def _run(region, constants, rng) -> tuple[np.ndarray, np.ndarray]:
    ins = [rng.normal(size=region.types[v].shape).astype(np.float32) for v in region.inputs]
    out_t = region.types[region.output]
    out = np.empty(out_t.shape, out_t.dtype)
    OrtChoice(region, constants, threads=1).bind(ins, out)()
    return out, np.asarray(reference_output(region, ins, constants)).reshape(out_t.shape)


def test_blocked_convolution_with_bias_and_relu_is_exported_in_nchw_between_its_edges(lowered):
    regions = regions_of(lowered)
    conv = next(r for r in regions if [n.op for n in r.body] == ["conv2d_nchwc", "add", "relu"])
    ops = _ops(conv, lowered.graph.constants)
    # one conversion in, one out; the bias add and relu in NCHW next to the Conv (onnxruntime fuses them)
    assert ops["Transpose"] == 2 and ops["Conv"] == 1 and ops["Add"] == 1 and ops["Relu"] == 1
    out, ref = _run(conv, lowered.graph.constants, np.random.default_rng(0))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_a_merged_run_converts_only_at_its_edges_and_matches_its_reference(lowered):
    regions = regions_of(lowered)
    blocked = [r for r in regions if r.types[r.output].layout and r.types[r.inputs[0]].layout][:4]
    assert [n.op for r in blocked for n in r.body][:3] == ["conv2d_nchwc", "add", "relu"]
    constants = lowered.graph.constants
    merged = merge_regions(blocked)
    separate = sum(_ops(r, constants)["Transpose"] for r in blocked)
    assert _ops(merged, constants)["Transpose"] == 2 < separate
    out, ref = _run(merged, constants, np.random.default_rng(1))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_unused_nodes_are_pruned(lowered):
    regions = regions_of(lowered)
    conv = next(r for r in regions if [n.op for n in r.body] == ["conv2d_nchwc", "add", "relu"])
    model = export_region(conv.body, conv.inputs, conv.output, conv.types, lowered.graph.constants)
    used = {i for n in model.graph.node for i in n.input}
    assert all(o in used or o == "out" for n in model.graph.node for o in n.output)
    onnx.checker.check_model(model)


def _grouped_model():
    """A 1x1 convolution into a 3x3 one in 4 groups of 16 channels (blocked, with a groups attribute), stride 2."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((64, 8, 1, 1)).astype(np.float32), "w0"),
             numpy_helper.from_array(rng.standard_normal((64, 16, 3, 3)).astype(np.float32), "wg")]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]), helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "wg"], ["b"], group=4, pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "grouped", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 9, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 5, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("vendor", ["onnxruntime", "torch"])
def test_a_grouped_blocked_convolution_runs_in_each_vendor_with_its_groups(vendor):
    from woodpecker.runtime.vendors import make_vendor

    lowered = lower_graph(optimize(import_onnx(_grouped_model())))
    region = next(r for r in regions_of(lowered) if any(n.attrs.get("groups", 1) == 4 for n in r.body))
    rng = np.random.default_rng(2)
    ins = [rng.normal(size=region.types[v].shape).astype(np.float32) for v in region.inputs]
    out_t = region.types[region.output]
    out = np.empty(out_t.shape, out_t.dtype)
    make_vendor(vendor, region, lowered.graph.constants, threads=1).bind(ins, out)()
    ref = np.asarray(reference_output(region, ins, lowered.graph.constants)).reshape(out_t.shape)
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_a_winograd_convolution_is_exported_as_the_plain_convolution_it_computes():
    """Its transformed weight U goes back to the 3x3 weight (woodpecker.ir.winograd.plain_weight): onnxruntime runs
    one Conv, and so does PyTorch (torch_ops), and both match the region's reference."""
    from woodpecker.passes.pipeline import PassOptions

    graph = optimize(import_onnx(tiny_cnn(image_size=20, channels=32)), PassOptions(pad_channels=16, winograd=True))
    lowered = lower_graph(graph)
    regions = regions_of(lowered)
    conv = next(r for r in regions if r.body[0].op == "conv2d_winograd_nchwc")
    assert _ops(conv, lowered.graph.constants)["Conv"] == 1
    out, ref = _run(conv, lowered.graph.constants, np.random.default_rng(2))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    pytest.importorskip("torch")
    from woodpecker.runtime.vendors import TorchChoice

    ins = [np.random.default_rng(3).normal(size=conv.types[v].shape).astype(np.float32) for v in conv.inputs]
    out = np.empty(conv.types[conv.output].shape, np.float32)
    TorchChoice(conv, lowered.graph.constants, threads=1).bind(ins, out)()
    ref = np.asarray(reference_output(conv, ins, lowered.graph.constants)).reshape(out.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
