"""Every family's knobs apply through s_tir.Schedule: random valid points build and compute the right numbers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from woodpecker.frontend.onnx import import_onnx
from woodpecker.lowering.model import lower_graph
from woodpecker.measure.correctness import relative_error
from woodpecker.measure.reference import reference_io
from woodpecker.passes.pipeline import optimize
from woodpecker.space.space import space_for_task


@pytest.fixture(scope="module")
def examples():
    from woodpecker import models

    out = {}
    for proto in (models.build("mobilenet_v2", image_size=32), models.build("resnet18", image_size=32),
                  models.build("bert", seq_len=16, layers=1), models.build("shufflenet_v2", image_size=32)):
        lowered = lower_graph(optimize(import_onnx(proto)))
        for key, task in lowered.tasks.items():
            if task.family not in out:
                node, call = lowered.example(key)
                out[task.family] = (task, reference_io(task, node, lowered.graph, call.args))
    return out


FAMILIES = ["conv2d_nchwc", "depthwise_nchwc", "conv2d", "dense_packed", "batch_matmul", "pool2d", "global_pool",
            "row_reduce", "injective"]


@pytest.mark.parametrize("family", FAMILIES)
def test_random_points_schedule_build_and_match_reference(family, examples):
    import tvm

    from woodpecker.hw.host import llvm_target
    from woodpecker.schedule.apply import schedule

    if family not in examples:
        pytest.fail(f"no zoo task of family {family}: the test model set must cover it")
    task, (inputs, expected) = examples[family]
    space = space_for_task(task)
    rng = random.Random(1)
    points = [space.default] + [space.random_point(rng) for _ in range(3)]
    dev = tvm.cpu()
    for point in points:
        ex = tvm.compile(schedule(task, point), target=llvm_target())
        args = [tvm.runtime.tensor(a, dev) for a in inputs]
        out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
        ex.mod[task.name](*args, out)
        assert relative_error(out.numpy(), expected) < 1e-4, (task.name, point)
