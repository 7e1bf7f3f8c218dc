"""Shared by the cluster measurer tests (Ray, RPC): a small convolution task with its reference, and candidate
points for it."""

from __future__ import annotations

import random

import pytest

from woodpecker.frontend.onnx import import_onnx
from woodpecker.lowering.model import lower_graph
from woodpecker.measure.reference import reference_io
from woodpecker.passes.pipeline import optimize
from woodpecker.space.space import space_for_task
from woodpecker.testing.models import tiny_cnn


@pytest.fixture(scope="module")
def conv():
    """(task, (inputs, expected)): tiny_cnn's blocked-layout convolution and its reference input/output."""
    lowered = lower_graph(optimize(import_onnx(tiny_cnn())))
    key = next(k for k, t in lowered.tasks.items() if t.family == "conv2d_nchwc")
    node, call = lowered.example(key)
    task = lowered.tasks[key]
    return task, reference_io(task, node, lowered.graph, call.args)


@pytest.fixture(scope="module")
def conv_points(conv) -> list[dict]:
    """The convolution's default point, then 3 seeded random valid points: 4 distinct points."""
    space = space_for_task(conv[0])
    rng = random.Random(0)
    points = [dict(space.default)]
    while len(points) < 4:
        p = space.random_point(rng)
        if p is not None and dict(p) not in points:
            points.append(dict(p))
    return points
