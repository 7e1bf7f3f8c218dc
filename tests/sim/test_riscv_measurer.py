"""RiscvMeasurer: the Measurer interface over simulation: one deterministic estimate per candidate, cached
builds, wrong outputs and illegal schedules rejected as data."""

from __future__ import annotations

import pytest

from woodpecker.measure.measurer import MeasureOptions
from woodpecker.sim.riscv.measurer import RiscvMeasurer
from woodpecker.sim.riscv.schedules import default_knobs


def test_measures_checks_and_caches(cnn_conv):
    task, inputs, expected = cnn_conv
    knobs = default_knobs(task, "rv64gcv128")
    spill = {**knobs, "tile_x": 4, "tile_y": 4, "tile_ko": 16}
    with RiscvMeasurer("rv64gcv128", build_workers=2, options=MeasureOptions(run_timeout_s=60)) as m:
        m.set_reference(task, inputs, expected)
        first, spilling = m.measure(task, [knobs, spill])
        assert first.ok and len(first.run_secs) == 1 and first.run_secs[0] > 0, first.error
        assert spilling.ok and spilling.cost > first.cost, "the simulated estimate ranks the spilling tile lower"
        details = m.last_details[0]
        assert details is not None and details["counts"]["vfma"] > 0 and details["cycles"] > 0

        again = m.measure(task, [knobs])[0]
        assert again.ok and again.build_secs == 0.0, "the object comes from the build cache"
        assert again.run_secs == first.run_secs, "simulated estimates are deterministic"

        # a reference that disagrees with the kernel: rejected, no estimate
        m.set_reference(task, inputs, expected + 1.0)
        wrong = m.measure(task, [knobs])[0]
        assert not wrong.ok and wrong.error.startswith("wrong result") and wrong.run_secs == ()
        assert wrong.cost == float("inf")

        m.set_reference(task, inputs, expected)
        bad = m.measure(task, [{**knobs, "reduction_order": "x,y,z"}])[0]  # not a permutation of the axes
        assert not bad.ok and bad.error.startswith("build failed")


def test_needs_a_reference_first(cnn_conv):
    task, _, _ = cnn_conv
    with RiscvMeasurer("rv32imf", build_workers=1) as m:
        with pytest.raises(RuntimeError, match="set_reference"):
            m.measure(task, [default_knobs(task, "rv32imf")])
