"""Contenders timed in fresh processes, one process one sample: figures for every live contender, one-line errors
for the others."""

from __future__ import annotations

import numpy as np

import woodpecker
from woodpecker.measure.isolated import Recipe, time_isolated
from woodpecker.testing.models import tiny_cnn


def test_isolated_timing_outputs_and_failures(tmp_path):
    proto = tiny_cnn()
    model_path = tmp_path / "m.onnx"
    model_path.write_bytes(proto.SerializeToString())
    cm = woodpecker.compile(proto, vendor=False)
    cm.save(tmp_path / "m.wpk")
    feed = cm.random_inputs(0)
    recipes = [
        Recipe("woodpecker", "artifact", str(tmp_path / "m.wpk")),
        Recipe("onnxruntime", "baseline", str(model_path)),
        Recipe("missing", "artifact", str(tmp_path / "nope.wpk")),
        Recipe("no-such-baseline", "baseline", str(model_path)),
    ]
    timings = time_isolated(recipes, feed, threads=1, rounds=2, per_round=3, warmup=1)
    assert [t.name for t in timings] == [r.name for r in recipes]
    wp, ort, missing, unknown = timings
    for t in (wp, ort):
        assert t.error is None and t.runs == 6 and 0 < t.p25_ms <= t.median_ms <= t.p75_ms
        assert len(t.process_ms) == 2 and t.samples.median_ms == t.median_ms  # one figure per fresh process
    # both processes computed the same function of the same inputs
    np.testing.assert_allclose(wp.outputs[0], ort.outputs[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(wp.outputs[0], cm.run(feed)[cm.outputs[0].name], rtol=1e-5, atol=1e-6)
    assert missing.median_ms is None and "nope.wpk" in missing.error and "\n" not in missing.error
    assert unknown.median_ms is None and "unknown baseline 'no-such-baseline'" in unknown.error


def test_hanging_worker_is_an_error_not_a_hang(tmp_path):
    import os

    proto = tiny_cnn()
    model_path = tmp_path / "m.onnx"
    model_path.write_bytes(proto.SerializeToString())
    feed = woodpecker.compile(proto, vendor=False).random_inputs(0)
    os.mkfifo(tmp_path / "hang.wpk")  # opening a FIFO with no writer blocks: the worker hangs while preparing
    timings = time_isolated([Recipe("hangs", "artifact", str(tmp_path / "hang.wpk")),
                             Recipe("onnxruntime", "baseline", str(model_path))],
                            feed, threads=1, rounds=1, per_round=2, warmup=0, prepare_timeout_s=20)
    hangs, ort = timings
    assert hangs.median_ms is None and "hung while preparing" in hangs.error
    assert ort.error is None and ort.runs == 2
