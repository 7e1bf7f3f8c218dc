"""CPU default schedules: the register tile follows the host's vector registers."""

from __future__ import annotations

import math

from woodpecker.hw.host import detect
from woodpecker.schedule import cpu
from woodpecker.schedule.structure import analyze


def _accumulators(knobs, lanes: int) -> int:
    rows = math.prod(int(v) for k, v in knobs.items() if k in ("tile_x", "tile_y"))
    return rows * math.ceil(int(knobs["tile_ko"]) / lanes)


def test_register_tile_holds_eight_accumulators_of_the_vector_width(lowered_zoo):
    task = next(t for t in lowered_zoo if t.family == "conv2d_nchwc" and t.param_shapes[-1][3] >= 8)
    st = analyze(task.kernel)
    for lanes in (8, 16):
        knobs = cpu.default_knobs(task.family, st, lanes, 8)
        assert _accumulators(knobs, lanes) == 8, (lanes, knobs)
    # on an AVX-512 register file a 16-lane block is one register: twice the rows of the AVX2 tile
    assert cpu.default_knobs(task.family, st, 16, 8)["tile_x"] == 2 * cpu.default_knobs(task.family, st, 8, 8)["tile_x"]


def test_host_register_tile_matches_the_detected_cpu():
    lanes, accumulators = cpu.host_register_tile()
    host = detect()
    assert lanes == host.vector_bits // 32
    assert accumulators == min(8, host.vector_registers // 2)
