"""Runs of onnxruntime calls merged into one session: only where no inner value leaves the run; the merged program
keeps its views in place and computes what the generated program does."""

from __future__ import annotations

import numpy as np

import woodpecker
from woodpecker.ir.graph import Node, TensorType
from woodpecker.planner.merge import call_groups, merge_regions
from woodpecker.planner.plan import RegionDecision, planned_program
from woodpecker.planner.regions import Region
from woodpecker.runtime.executor import CallSpec, Program, TensorSpec

SHAPE = (1, 4)
ORT, OWN = "onnxruntime", "woodpecker"


def _program(reads: list[tuple[str, ...]], outputs=("v4",), views=(), view_steps=()) -> Program:
    """Call i writes v{i}, reading `reads[i]`; x is the model input."""
    calls = tuple(CallSpec(f"k{i}", tuple((v, SHAPE) for v in (*ins, f"v{i}"))) for i, ins in enumerate(reads))
    values = {v: (SHAPE, "float32") for v in ["x", *[f"v{i}" for i in range(len(reads))], *[d for _, d in views]]}
    return Program((TensorSpec("x", SHAPE, "float32"),), tuple(TensorSpec(o, SHAPE, "float32") for o in outputs),
                   tuple(outputs), values, calls, tuple(views), tuple(view_steps))


CHAIN = [("x",), ("v0",), ("v1",), ("v2",), ("v3",)]


def test_a_run_of_onnxruntime_calls_is_one_group():
    assert call_groups(_program(CHAIN), [OWN, ORT, ORT, ORT, OWN]) == [(0,), (1, 2, 3), (4,)]
    assert call_groups(_program(CHAIN), [OWN, ORT, ORT, ORT, OWN], merge=False) == [(0,), (1,), (2,), (3,), (4,)]


def test_torch_runs_are_not_merged():
    assert call_groups(_program(CHAIN), [OWN, "torch", "torch", OWN, OWN]) == [(0,), (1,), (2,), (3,), (4,)]


def test_a_run_is_cut_where_an_inner_value_is_read_outside_it():
    # v1 is read by call 4 (outside the run 1..3): the run is cut after call 1
    reads = [("x",), ("v0",), ("v1",), ("v2",), ("v3", "v1")]
    assert call_groups(_program(reads), [OWN, ORT, ORT, ORT, OWN]) == [(0,), (1,), (2, 3), (4,)]
    # read by call 3 inside the run instead, it stays inside
    reads = [("x",), ("v0",), ("v1",), ("v2", "v1"), ("v3",)]
    assert call_groups(_program(reads), [OWN, ORT, ORT, ORT, OWN]) == [(0,), (1, 2, 3), (4,)]


def test_a_run_is_cut_at_a_model_output_or_a_viewed_value():
    assert call_groups(_program(CHAIN, outputs=("v4", "v2")), [OWN, ORT, ORT, ORT, OWN]) == [(0,), (1, 2), (3,), (4,)]
    viewed = _program(CHAIN, views=(("v1", "r1"),), view_steps=(2,))
    assert call_groups(viewed, [OWN, ORT, ORT, ORT, OWN]) == [(0,), (1,), (2, 3), (4,)]


def _region(i: int, ins: tuple[str, ...]) -> Region:
    nodes = (Node(f"n{i}", "relu", ins[:1], (f"v{i}",)),) if len(ins) == 1 else \
        (Node(f"n{i}", "add", ins, (f"v{i}",)),)
    types = {v: TensorType(SHAPE, "float32") for v in (*ins, f"v{i}")}
    return Region(i, f"n{i}", nodes, ins, f"v{i}", types, ())


def test_merged_region_reads_only_what_comes_from_outside_the_run():
    merged = merge_regions([_region(1, ("v0",)), _region(2, ("v1", "x")), _region(3, ("v2", "v0"))])
    assert merged.inputs == ("v0", "x") and merged.output == "v3" and merged.index == 1
    assert [n.name for n in merged.body] == ["n1", "n2", "n3"]


def test_planned_program_drops_merged_calls_and_moves_views_before_the_merged_call():
    reads = [("x",), ("v0",), ("r0",), ("v2",), ("v3",)]
    program = _program(reads, views=(("v0", "r0"), ("v4", "r4")), view_steps=(2, 5))
    regions = [_region(i, r) for i, r in enumerate(reads)]
    chosen = [OWN, ORT, ORT, ORT, OWN]
    decisions = [RegionDecision(i, f"n{i}", f"k{i}", c, ()) for i, c in enumerate(chosen)]
    planned, vendor_regions, groups = planned_program(program, regions, decisions)
    assert [c.func for c in planned.calls] == ["k0", "vendor_1_onnxruntime_to_3", "k4"]
    assert groups == [(0,), (1, 2, 3), (4,)]
    assert planned.calls[1].args == (("v0", SHAPE), ("r0", SHAPE), ("v3", SHAPE))
    assert planned.view_steps == (1, 3)
    assert vendor_regions["vendor_1_onnxruntime_to_3"].output == "v3"
    # the values made and read inside the run are never written: no storage for them
    assert "v1" not in planned.values and "v2" not in planned.values and "v3" in planned.values


def test_a_call_continues_a_run_only_after_a_value_that_stays_inside():
    from woodpecker.planner.merge import continues_run

    viewed = _program(CHAIN, outputs=("v4", "v2"), views=(("v0", "r0"),), view_steps=(1,))
    # v0 is viewed and v2 a model output: calls 1 and 3 start a new session
    assert continues_run(viewed) == [False, False, True, False, True]


def test_a_model_run_mostly_in_merged_onnxruntime_sessions_matches_the_generated_one():
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.planner.regions import regions_of
    from woodpecker.runtime.compiled import CompiledModel
    from woodpecker.testing.models import tiny_cnn

    proto = tiny_cnn(image_size=20, channels=16)
    cm = woodpecker.compile(proto, vendor=False)
    lowered = lower_graph(optimize(import_onnx(proto)))
    regions = regions_of(lowered)
    n = len(regions)
    assert n >= 4
    # every call but the second to last in onnxruntime: a run of n-2 calls, then woodpecker, then onnxruntime
    chosen = [ORT] * n
    chosen[-2] = OWN
    decisions = [RegionDecision(r.index, r.node, c.func, lib, ()) for r, c, lib in zip(regions, cm.program.calls, chosen)]
    program, vregions, _ = planned_program(cm.program, regions, decisions)
    assert len(program.calls) < n and any(name.endswith(f"_to_{n - 3}") for name in vregions)
    constants = dict(cm.constants)
    for r in vregions.values():
        constants.update({k: lowered.graph.constants[k] for k in r.constant_names})
    planned = CompiledModel(cm.library, program, constants, cm.kernels, cm.metadata, executable=cm._executable,
                            vendor_regions=vregions)
    feed = cm.random_inputs(1)
    expected, got = cm.run(feed), planned.run(feed)
    for name, ref in expected.items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
