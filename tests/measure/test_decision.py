"""Whole-model decisions from per-process samples: noise never decides, a real difference does."""

from __future__ import annotations

import pytest

from woodpecker.measure.decision import ProcessSamples, beats, choose, ratio_line


def S(name, *ms):
    return ProcessSamples(name, tuple(float(x) for x in ms))


def test_a_bimodal_contender_does_not_win_on_one_lucky_process():
    # the VM's process-level modes: one fast process among slow ones is one sample, not the contender's speed
    ours = S("woodpecker", 6.0, 6.1, 5.9, 6.2, 6.0)
    lucky = S("onnxruntime", 3.0, 8.1, 8.0, 8.2, 7.9)
    d = choose({"woodpecker": ours, "onnxruntime": lucky})
    assert d.chosen == "woodpecker" and not d.within_noise


def test_overlapping_spreads_keep_the_incumbent_and_say_so():
    ours = S("woodpecker", 4.0, 8.1, 4.2, 7.9, 5.0)
    ort = S("onnxruntime", 3.7, 7.2, 3.9, 7.0, 4.4)  # faster by the median, inside the noise
    d = choose({"woodpecker": ours, "onnxruntime": ort})
    assert d.chosen == "woodpecker" and d.within_noise and "within the spread" in d.reason


def test_a_contender_faster_beyond_the_spread_wins():
    ours = S("woodpecker", 10.0, 10.4, 9.9, 10.2, 10.1)
    ort = S("onnxruntime", 8.0, 8.3, 8.1, 7.9, 8.2)
    planned = S("planned", 9.0, 9.2, 9.1, 8.9, 9.0)
    d = choose({"woodpecker": ours, "planned": planned, "onnxruntime": ort})
    assert d.chosen == "onnxruntime" and "1.25x" in d.reason


def test_within_the_tie_margin_is_not_beyond():
    ours = S("woodpecker", 10.0, 10.0, 10.0)
    close = S("planned", 9.8, 9.8, 9.8)  # 2 %: separated ranges, but under the 3 % margin
    assert not beats(close, ours)
    assert choose({"woodpecker": ours, "planned": close}).chosen == "woodpecker"


def test_without_the_incumbent_the_lowest_median_ships():
    d = choose({"planned": S("planned", 5, 6, 7), "onnxruntime": S("onnxruntime", 4, 5, 9)})
    assert d.chosen == "onnxruntime"
    with pytest.raises(ValueError):
        choose({})


def test_ratio_line_names_the_shipped_build_and_the_noise():
    ours = S("woodpecker", 39.0, 38.1, 40.2, 39.5, 38.8)
    ort = S("onnxruntime", 40.9, 38.9, 44.0, 41.0, 39.2)
    line = ratio_line(ours, ort, "woodpecker's kernels")
    assert line.startswith("shipping woodpecker's kernels: 39.0 ms (")
    assert "vs onnxruntime 40.9 ms" in line and "1.05x, within noise" in line
    assert ProcessSamples("x", (2.0,)).describe() == "2.00 ms (2.00-2.00)"
