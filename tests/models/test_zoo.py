"""Every zoo model compiles, runs and matches onnxruntime (small inputs keep this to seconds per model)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import woodpecker
from woodpecker import models
from woodpecker.dsl import printer
from woodpecker.dsl.parser import parse
from woodpecker.errors import ModelLoadError
from woodpecker.measure.correctness import RTOL, relative_error

SMALL = {
    "resnet18": dict(image_size=64),
    "resnet50": dict(image_size=64),
    "mobilenet_v2": dict(image_size=64),
    "squeezenet": dict(image_size=64),
    "shufflenet_v2": dict(image_size=64),
    "shufflenet_v1": dict(image_size=64),
    "bert": dict(seq_len=32, layers=2),
    "densenet121": dict(image_size=32, blocks=(2, 3, 2, 2)),  # DenseNet-121's 58 layers are 136 kernels
    "inception_v1": dict(image_size=32),
    "resnext50": dict(image_size=32),
    "mobilenet_v3": dict(image_size=32),
    "alexnet": dict(image_size=64),
    "vgg19": dict(image_size=32),
    "vit_b16": dict(image_size=32, layers=2),
}


def test_every_zoo_model_is_tested():
    assert set(SMALL) == set(models.ZOO)


def _feeds(name: str, proto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    if name == "bert":
        mask = np.ones((1, 32), np.int64)
        mask[0, 24:] = 0  # padding tokens at the end
        return {"input_ids": rng.integers(0, 8192, (1, 32)).astype(np.int64), "attention_mask": mask}
    (inp,) = proto.graph.input
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    return {inp.name: rng.standard_normal(shape).astype(np.float32)}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_zoo_model_matches_onnxruntime(name):
    proto = models.build(name, **SMALL[name])
    cm = woodpecker.compile(proto, vendor=False)  # woodpecker's own kernels, not a vendor library's
    feeds = _feeds(name, proto)
    out = cm.run(feeds)
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert list(out) == [o.name for o in proto.graph.output]
    for got, want in zip(out.values(), ref):
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.all(np.isfinite(got))
        scale = float(np.max(np.abs(want)))
        assert scale > 0
        assert relative_error(got, want) <= RTOL
    # the DSL program recorded for each kernel is canonical text: it parses and prints back unchanged
    for k in cm.kernels:
        module = parse(k.source)
        assert [kk.name for kk in module.kernels] == [k.name]
        assert printer.module(module) == k.source


def test_build_options_change_the_model():
    small = models.build("resnet18", image_size=32)
    dims = [d.dim_value for d in small.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 32]
    assert models.build("resnet18", image_size=32, seed=1).graph.initializer[0] != small.graph.initializer[0]
    assert models.build("resnet18", image_size=32).graph.initializer[0] == small.graph.initializer[0]  # seeded
    out = models.build("resnet18", image_size=32, num_classes=10).graph.output[0]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [1, 10]


def test_unknown_zoo_model():
    with pytest.raises(ModelLoadError, match="unknown zoo model 'resnet1'; available: resnet18"):
        models.build("resnet1")


def _attr(node, name: str, default=None):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _consumers(proto, output: str) -> list:
    return [n for n in proto.graph.node if output in n.input]


def _densenet_family(proto) -> None:
    widths = sorted(len(n.input) for n in proto.graph.node if n.op_type == "Concat")
    # layer j of a block of n reads the block input and the j maps before it (one Concat from j = 1 on); the block's
    # output concatenates all n + 1
    blocks = SMALL["densenet121"].get("blocks", (6, 12, 24, 16))
    assert widths == sorted(j + 1 for n in blocks for j in range(1, n + 1))
    assert sum(n.op_type == "AveragePool" for n in proto.graph.node) == 3  # the transitions


def _inception_family(proto) -> None:
    modules = [n for n in proto.graph.node if n.op_type == "Concat"]
    assert len(modules) == 9 and all(len(n.input) == 4 for n in modules)
    kernels = {tuple(_attr(n, "kernel_shape")) for n in proto.graph.node if n.op_type == "Conv"}
    assert {(1, 1), (3, 3), (5, 5), (7, 7)} == kernels
    stride1_pools = [n for n in proto.graph.node if n.op_type == "MaxPool" and _attr(n, "strides") == [1, 1]]
    assert len(stride1_pools) == 9  # the pool branch of every module


def _resnext_family(proto) -> None:
    grouped = [n for n in proto.graph.node if n.op_type == "Conv" and _attr(n, "group", 1) != 1]
    assert len(grouped) == 16 and all(_attr(n, "group") == 32 and _attr(n, "kernel_shape") == [3, 3] for n in grouped)
    assert sum(n.op_type == "Add" for n in proto.graph.node) == 16  # one residual per bottleneck


def _mobilenet_v3_family(proto) -> None:
    ops = [n.op_type for n in proto.graph.node]
    assert "HardSwish" in ops and "Relu" in ops
    squeeze_excites = 0
    for pool in (n for n in proto.graph.node if n.op_type == "GlobalAveragePool"):
        chain = [pool]
        while len(chain) < 5 and len(nxt := _consumers(proto, chain[-1].output[0])) == 1:
            chain.append(nxt[0])
        if [n.op_type for n in chain] == ["GlobalAveragePool", "Conv", "Relu", "Conv", "HardSigmoid"]:
            (mul,) = _consumers(proto, chain[-1].output[0])
            assert mul.op_type == "Mul" and pool.input[0] in mul.input  # the excitation scales the block's input
            squeeze_excites += 1
    assert squeeze_excites == 8 == ops.count("HardSigmoid") == ops.count("Mul")  # Table 1's SE blocks


def _fc_head_family(proto) -> None:
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 3 and all(_attr(n, "transB") == 1 for n in gemms)
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}


def _vit_family(proto) -> None:
    ops = [n.op_type for n in proto.graph.node]
    layers = 2
    assert ops.count("Softmax") == layers and ops.count("Gelu") == layers
    assert ops.count("LayerNormalization") == 2 * layers + 1  # pre-norms and the final norm
    (patch,) = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert _attr(patch, "kernel_shape") == [16, 16] and _attr(patch, "strides") == [16, 16]
    assert proto.opset_import[0].version >= 20  # Gelu is an opset 20 operator


FAMILIES = {
    "densenet121": _densenet_family, "inception_v1": _inception_family, "resnext50": _resnext_family,
    "mobilenet_v3": _mobilenet_v3_family, "alexnet": _fc_head_family, "vgg19": _fc_head_family,
    "vit_b16": _vit_family,
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_wider_zoo_model_has_its_family_op_mix(name):
    proto = models.build(name, **SMALL[name])
    onnx.checker.check_model(proto, full_check=True)
    FAMILIES[name](proto)


# Learnable parameters (BatchNormalization's running statistics left out) of torchvision's models at 1000 classes:
# the builders lay out the same architecture. inception_v1 is torchvision's googlenet (6,624,904) with the paper's
# 5x5 convolutions where torchvision has 3x3 ones (+380,928).
TORCHVISION_PARAMETERS = {"densenet121": 7_978_856, "resnext50": 25_028_904, "mobilenet_v3": 5_483_032,
                          "inception_v1": 7_005_832}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMETERS))
def test_wider_zoo_model_has_torchvisions_parameter_count(name):
    proto = models.build(name)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 224, 224]
    learned = [t for t in proto.graph.initializer if not t.name.startswith(("mean_", "var_"))]
    assert sum(int(np.prod(t.dims)) for t in learned) == TORCHVISION_PARAMETERS[name]


def test_vit_rejects_an_image_size_that_is_not_whole_patches():
    with pytest.raises(ModelLoadError, match="image_size 40 must be a multiple of patch 16"):
        models.build("vit_b16", image_size=40)


@pytest.mark.parametrize(("name", "too_small", "least"), [("alexnet", 62, 63), ("vgg19", 31, 32)])
def test_plain_conv_stack_refuses_an_image_too_small_for_its_pools(name, too_small, least):
    with pytest.raises(ModelLoadError, match=f"{name}: image_size {too_small} is too small"):
        models.build(name, image_size=too_small, num_classes=10)
    onnx.checker.check_model(models.build(name, image_size=least, num_classes=10), full_check=True)


def _e2e_module(monkeypatch):
    import importlib.util
    import pathlib
    import sys

    # the script puts benchmarks/ on sys.path and imports its `common` module: undone after the test
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "common", None)
    monkeypatch.delitem(sys.modules, "common")
    path = pathlib.Path(__file__).parents[2] / "benchmarks" / "e2e.py"
    spec = importlib.util.spec_from_file_location("e2e_benchmark", path)
    e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e2e)
    return e2e


def test_the_roofline_counts_the_models_work_not_the_padding(monkeypatch):
    """The e2e benchmark's roofline floor counts the model's own FLOPs and weights: ShuffleNetV2's padded channel
    blocks compute zeros the model does not ask for, a ResNet-18 has no padding; its 3x3 layers that run by Winograd
    count the products Winograd does (within the transforms' few per cent of the compiled kernels' FLOPs), and their
    weights count as given, not in their 4x larger transformed form."""
    import woodpecker
    from woodpecker.passes import layout

    e2e = _e2e_module(monkeypatch)
    proto = models.build("shufflenet_v2", image_size=64, num_classes=10)
    gflop, weight_bytes = e2e.model_work(proto)
    compiled = woodpecker.compile(proto, vendor=False)
    assert gflop < compiled.gflop and weight_bytes < sum(np.asarray(v).nbytes for v in compiled.constants.values())

    proto = models.build("resnet18", image_size=64, num_classes=10)
    gflop, weight_bytes = e2e.model_work(proto)
    compiled = woodpecker.compile(proto, vendor=False)
    assert any(k.family == "conv2d_winograd" for k in compiled.kernels)
    assert gflop == pytest.approx(compiled.gflop, rel=0.02)
    assert weight_bytes < sum(np.asarray(v).nbytes for v in compiled.constants.values())
    monkeypatch.setattr(layout, "winograd_fits", lambda *args: False)  # every layer direct
    gflop, weight_bytes = e2e.model_work(proto)
    compiled = woodpecker.compile(proto, vendor=False)
    assert gflop == pytest.approx(compiled.gflop)
    assert weight_bytes == sum(np.asarray(v).nbytes for v in compiled.constants.values())


def test_e2e_benchmark_model_sets_cover_the_zoo(monkeypatch):
    e2e = _e2e_module(monkeypatch)
    assert set(e2e.model_names("all")) == set(models.ZOO)  # a new zoo model is in one of the benchmark's sets
    assert e2e.model_names("default") == e2e.DEFAULT_MODELS
    assert e2e.model_names("resnet18,wider,vgg19") == ["resnet18", *e2e.WIDER_MODELS]  # each model once, in order
