"""Baselines of `woodpecker bench`: MetaSchedule tunes within its budget and computes what onnxruntime computes."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.measure import baselines as bl
from woodpecker.testing.models import tiny_mlp


def test_metaschedule_spreads_a_small_budget_over_every_task():
    assert bl.metaschedule_trials_per_iter(128, 27) == 4
    assert bl.metaschedule_trials_per_iter(64, 1) == 64
    assert bl.metaschedule_trials_per_iter(4096, 10) == 64
    assert bl.metaschedule_trials_per_iter(8, 27) == 1


def test_metaschedule_baseline_matches_onnxruntime():
    # the smallest model: MetaSchedule pays seconds of search and a builder pool per task even at 1 trial each
    proto = tiny_mlp()
    name = proto.graph.input[0].name
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    feed = {name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    ms = bl.prepare("tvm-metaschedule", proto.SerializeToString(), feed, threads=2, trials=4)
    ort = bl.prepare("onnxruntime", proto.SerializeToString(), feed, threads=2)
    # strict: a baseline that drops or adds an output fails here instead of being compared on a prefix
    for got, want in zip(ms.outputs(), ort.outputs(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert ms.note.startswith("4 trials over") and ms.setup_s > 0


def _feed(proto):
    name = proto.graph.input[0].name
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    return {name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}


def test_cudnn_baseline_says_it_needs_a_gpu_where_torch_sees_none():
    import torch

    from woodpecker.errors import TargetError

    if torch.cuda.is_available():
        pytest.skip("a GPU is attached: test_cudnn_baseline_matches_onnxruntime runs instead")
    proto = tiny_mlp()
    with pytest.raises(TargetError, match="cudnn baseline needs an NVIDIA GPU"):
        bl.prepare("cudnn", proto.SerializeToString(), _feed(proto), threads=2)


def test_torch_baseline_matches_onnxruntime():
    """The torch baseline's code is the cudnn baseline's, on the CPU device."""
    proto = tiny_mlp()
    feed = _feed(proto)
    got = bl.prepare("torch", proto.SerializeToString(), feed, threads=2).outputs()
    want = bl.prepare("onnxruntime", proto.SerializeToString(), feed, threads=2).outputs()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
def test_cudnn_baseline_matches_onnxruntime():
    from woodpecker.testing.models import tiny_cnn

    proto = tiny_cnn(image_size=32, channels=32)
    feed = _feed(proto)
    cudnn = bl.prepare("cudnn", proto.SerializeToString(), feed, threads=2)
    want = bl.prepare("onnxruntime", proto.SerializeToString(), feed, threads=2).outputs()
    for g, w in zip(cudnn.outputs(), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)
    assert "cudnn.benchmark" in cudnn.note
