"""Every zoo model compiles, runs and matches onnxruntime (small inputs keep this to seconds per model)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import woodpecker
from woodpecker import models
from woodpecker.dsl import printer
from woodpecker.dsl.parser import parse
from woodpecker.errors import ModelLoadError

SMALL = {
    "resnet18": dict(image_size=64),
    "resnet50": dict(image_size=64),
    "mobilenet_v2": dict(image_size=64),
    "squeezenet": dict(image_size=64),
    "shufflenet_v2": dict(image_size=64),
    "bert": dict(seq_len=32, layers=2),
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
    cm = woodpecker.compile(proto)
    feeds = _feeds(name, proto)
    out = cm.run(feeds)
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert list(out) == [o.name for o in proto.graph.output]
    for got, want in zip(out.values(), ref):
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.all(np.isfinite(got))
        scale = float(np.max(np.abs(want)))
        assert scale > 0
        assert float(np.max(np.abs(got - want))) / scale <= 1e-3
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
