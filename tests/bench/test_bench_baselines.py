"""Baselines of `woodpecker bench`: MetaSchedule tunes within its budget and computes what onnxruntime computes."""

from __future__ import annotations

import numpy as np

from woodpecker.bench import baselines as bl
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
    for got, want in zip(ms.outputs(), ort.outputs()):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert ms.note.startswith("4 trials over") and ms.setup_s > 0
