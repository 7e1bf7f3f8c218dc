"""Real measurement of a small kernel: timing repeats, reference check, caching, and wrong results rejected."""

from __future__ import annotations

import pytest

from woodpecker.frontend.onnx import import_onnx
from woodpecker.hw.host import target_dict
from woodpecker.lowering.model import lower_graph
from woodpecker.measure.measurer import MeasureOptions, Measurer
from woodpecker.measure.reference import reference_io
from woodpecker.passes.pipeline import optimize
from woodpecker.space.space import space_for_task
from woodpecker.testing.models import tiny_cnn


@pytest.fixture(scope="module")
def conv():
    lowered = lower_graph(optimize(import_onnx(tiny_cnn())))
    key = next(k for k, t in lowered.tasks.items() if t.family == "conv2d_nchwc")
    node, call = lowered.example(key)
    return lowered.tasks[key], reference_io(lowered.tasks[key], node, lowered.graph, call.args)


def test_measures_checks_and_caches(conv):
    task, (inputs, expected) = conv
    space = space_for_task(task)
    with Measurer(target_dict(), options=MeasureOptions(repeat=3, min_repeat_ms=5)) as m:
        m.set_reference(task, inputs, expected)
        first = m.measure(task, [space.default])[0]
        assert first.ok and len(first.run_secs) == 3 and all(s > 0 for s in first.run_secs)
        again = m.measure(task, [space.default])[0]
        assert again.ok and again.build_secs == 0.0, "the compiled candidate comes from the build cache"
        # a reference that disagrees with the kernel: the candidate is rejected before it is timed
        m.set_reference(task, inputs, expected + 1.0)
        wrong = m.measure(task, [space.default])[0]
        assert not wrong.ok and "wrong result" in wrong.error and wrong.run_secs == ()


def test_illegal_schedule_is_a_failed_build(conv):
    task, (inputs, expected) = conv
    space = space_for_task(task)
    bad = dict(space.default, reduction_order="x,y,z")  # not a permutation of the reduction axes
    with Measurer(target_dict(), options=MeasureOptions(repeat=2, min_repeat_ms=1)) as m:
        m.set_reference(task, inputs, expected)
        res = m.measure(task, [bad])[0]
    assert not res.ok and res.error.startswith("build failed")
