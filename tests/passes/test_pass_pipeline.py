"""The whole optimizer keeps every zoo model's semantics (reference interpreter before and after)."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker import models
from woodpecker.frontend.onnx import import_onnx
from woodpecker.ir import ops
from woodpecker.passes.pipeline import PassOptions, optimize

CASES = {
    "resnet18": dict(image_size=32),
    "mobilenet_v2": dict(image_size=32),
    "squeezenet": dict(image_size=48),
    "shufflenet_v2": dict(image_size=32),
    "shufflenet_v1": dict(image_size=32),
    "bert": dict(seq_len=8, layers=1, hidden=32, heads=2, vocab=50),
    "densenet121": dict(image_size=32),
    "inception_v1": dict(image_size=32),
    "resnext50": dict(image_size=32),
    "mobilenet_v3": dict(image_size=32),
    "alexnet": dict(image_size=64),
    "vgg19": dict(image_size=32),
    "vit_b16": dict(image_size=32, layers=1, hidden=64, heads=2),
}


def test_cases_cover_the_zoo():
    assert set(CASES) <= set(models.ZOO) and set(models.ZOO) - set(CASES) == {"resnet50"}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("options", [PassOptions(), PassOptions(blocked_layout=False, pack_dense=False, fuse=False),
                                     PassOptions(pad_channels=16, concat_in_place=True)],
                         ids=["default", "plain", "padded"])
def test_optimize_preserves_semantics(h, name, options):
    g = import_onnx(models.build(name, **CASES[name]))
    out = optimize(g, options)
    feeds = h.random_inputs(g)
    if name == "bert":
        rng = np.random.default_rng(0)
        feeds = {"input_ids": rng.integers(0, 50, (1, 8)), "attention_mask": np.array([[1] * 6 + [0] * 2])}
    from woodpecker.ir.interpreter import interpret

    ref, got = interpret(g, feeds)[0], interpret(out, feeds)[0]
    assert np.max(np.abs(ref - got)) <= 1e-4 * np.max(np.abs(ref))
    kinds = {ops.get(m.op).kind for n in out.nodes for m in (n.body or (n,))}
    assert "batch_norm" not in {m.op for n in out.nodes for m in (n.body or (n,))}
    if options.fuse:
        # no elementwise op is left beside an anchor or injective op it could have joined
        producers, uses = out.producers(), out.use_counts()
        for n in out.nodes:
            if n.op == "fused" or ops.get(n.op).kind != "elementwise":
                continue
            for v in n.inputs:
                p = producers.get(v)
                if p is not None and uses[v] == 1 and v not in out.outputs and out.types[v].shape == out.types[n.outputs[0]].shape:
                    kind = "anchor" if p.op == "fused" else ops.get(p.op).kind
                    assert kind not in ("anchor", "injective", "elementwise"), (p.op, n.op)
    assert kinds <= {"elementwise", "injective", "anchor", "view"}
