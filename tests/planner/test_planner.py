"""The planner: fastest correct choice wins, wrong results never do, vendor regions compute the same numbers,
and a saved plan replays exactly."""

from __future__ import annotations

import numpy as np
import pytest

import woodpecker
from woodpecker.frontend.onnx import import_onnx
from woodpecker.lowering.model import lower_graph
from woodpecker.passes.pipeline import optimize
from woodpecker.planner.choices import reference_output
from woodpecker.planner.plan import RegionDecision, plan_regions, planned_program
from woodpecker.planner.regions import regions_of
from woodpecker.testing.models import tiny_cnn, tiny_mlp


def _compiled(proto):
    cm = woodpecker.compile(proto, vendor=False)
    lowered = lower_graph(optimize(import_onnx(proto)))
    ex = cm.executor
    ex.set_inputs(cm.random_inputs())
    ex.execute()
    return cm, lowered, regions_of(lowered)


class _Fake:
    """A vendor whose correctness the test controls: it copies the region's reference output (or a wrong one)."""

    def __init__(self, name, region, constants, wrong=False):
        self.name, self.region, self.constants, self.wrong = name, region, constants, wrong

    def bind(self, inputs, out):
        ref = np.asarray(reference_output(self.region, inputs, self.constants)).reshape(out.shape)
        if self.wrong:
            ref = ref + 1.0
        return lambda: np.copyto(out, ref)


def _make(kind, region, constants, threads):
    return _Fake(kind, region, constants, wrong=kind == "wrong")


def _timer(seconds):
    """A stand-in for the interleaved timer: every correct choice runs once, then gets its declared time, so that
    the decision logic is tested without depending on how loaded the machine is."""

    def timer(runs, rounds):
        for run in runs.values():
            run()
        return {name: seconds[name] for name in runs}

    return timer


def test_fast_is_picked_slow_and_wrong_never():
    cm, lowered, regions = _compiled(tiny_cnn(image_size=32, channels=32))
    times = {"woodpecker": 100e-6, "fast": 50e-6, "slow": 900e-6, "wrong": 1e-6}
    decisions = plan_regions(cm.executor, regions, lowered.graph.constants, [c.func for c in cm.program.calls],
                             vendors=("fast", "slow", "wrong"), make=_make, timer=_timer(times))
    assert decisions and all(d.chosen == "fast" for d in decisions)
    for d in decisions:
        results = {r.name: r for r in d.results}
        assert results["wrong"].median_us is None and "wrong result" in results["wrong"].error
        assert results["slow"].median_us == pytest.approx(900.0) and results["fast"].median_us == pytest.approx(50.0)


def test_generated_kernel_keeps_ties_within_three_percent():
    cm, lowered, regions = _compiled(tiny_cnn())
    times = {"woodpecker": 100e-6, "close": 98e-6}
    decisions = plan_regions(cm.executor, regions, lowered.graph.constants, [c.func for c in cm.program.calls],
                             vendors=("close",), make=_make, timer=_timer(times))
    assert all(d.chosen == "woodpecker" for d in decisions)


@pytest.mark.parametrize("vendor", ["onnxruntime", "torch"])
@pytest.mark.parametrize("proto", [tiny_cnn(image_size=20, channels=16), tiny_mlp()], ids=["cnn", "mlp"])
def test_every_exportable_region_runs_on_each_vendor(vendor, proto):
    """Force the vendor everywhere it can run: the composed model must match the generated one."""
    cm, lowered, regions = _compiled(proto)
    feed = cm.random_inputs()
    expected = cm.run(feed)
    decisions = plan_regions(cm.executor, regions, lowered.graph.constants, [c.func for c in cm.program.calls],
                             vendors=(vendor,), rounds=1)
    forced = [RegionDecision(d.index, d.node, d.kernel,
                             vendor if any(r.name == vendor and r.median_us for r in d.results) else "woodpecker",
                             d.results) for d in decisions]
    assert sum(f.chosen == vendor for f in forced) >= len(forced) // 2, "most regions should be exportable"
    program, vregions, _ = planned_program(cm.program, regions, forced)
    constants = dict(cm.constants)
    for r in vregions.values():
        constants.update({k: lowered.graph.constants[k] for k in r.constant_names})
    planned = woodpecker.runtime.compiled.CompiledModel(cm.library, program, constants, cm.kernels, cm.metadata,
                                                        executable=cm._executable, vendor_regions=vregions)
    got = planned.run(feed)
    for name, ref in expected.items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


def test_plan_is_recorded_and_replays_exactly(tmp_path):
    cm = woodpecker.compile(tiny_cnn(image_size=24), vendor=True)
    plan = cm.metadata["plan"]
    assert len(plan["calls"]) == len(cm.program.calls)
    for call in plan["calls"]:
        names = [r["name"] for r in call["results"]]
        assert names[0] == "woodpecker" and "onnxruntime" in names and "torch" in names
        assert call["chosen"] in names
    assert plan["model"]["chosen"] in plan["model"]["times_ms"]
    # the whole-model candidates were timed in fresh processes, as they will be deployed, one sample a process
    assert "fresh processes per build" in plan["model"]["timing"]
    assert set(plan["model"]["times_ms"]) >= {"woodpecker", "onnxruntime"}
    assert all(len(ms) == 5 for ms in plan["model"]["process_ms"].values())
    assert plan["model"]["reason"]
    # the calls were timed apart from the compiling process, with no runtime's workers spinning, switches charged
    assert plan["per_call_timing"].startswith("fresh process, passive wait policies")
    assert plan["switch_us"] and all(us >= 0 for us in plan["switch_us"].values())
    path = tmp_path / "m.wpk"
    cm.save(path)
    again = woodpecker.load(path)
    assert again.program == cm.program
    assert again.metadata["plan"] == plan
    feed = cm.random_inputs(seed=3)
    a, b = cm.run(feed), again.run(feed)
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert [c.vendor for c in again.program.calls] == [c.vendor for c in cm.program.calls]
