"""RISC-V/MCU profiles, search spaces and the cycle model: every number sourced, every space loadable, the cycle
formulas as documented, a missing toolchain named with its packages."""

from __future__ import annotations

import pathlib
import re
import tomllib

import pytest

from woodpecker.data import data_dir
from woodpecker.errors import TargetError
from woodpecker.hw.profile import list_profiles, load_profile
from woodpecker.sim.riscv.cycle_model import CycleModel
from woodpecker.sim.riscv.qemu import CLASSES, COUNTER_NAMES, SimCounts, TaskCounts

SIM_PROFILES = ["rv64gc", "rv64gcv128", "rv64gcv256", "rv32imf", "pulp8", "esp32c3"]
TABLES = ("clock", "cores", "pipeline", "latency_cycles", "occupancy_cycles", "vector", "memory")


def test_profiles_load_with_their_simulation_tables():
    from woodpecker.sim.riscv.toolchain import toolchain_for

    ids = {p.id for p in list_profiles()}
    assert set(SIM_PROFILES) <= ids
    for name in SIM_PROFILES:
        p = load_profile(name)
        assert p.kind in ("riscv", "mcu") and p.target_class == p.kind and p.measurement == "simulated:qemu"
        assert p.simulated
        model = CycleModel.from_profile(p)
        assert model.clock_hz > 1e7 and all(model.class_cost(c) > 0 for c in CLASSES)
        tc = toolchain_for(p)
        assert tc.xlen == (64 if p.kind == "riscv" else 32)
        mattr = list(p.target["mattr"])
        assert "+v" not in mattr, "RVV is described as +zve64d,+zvl<VLEN>b (TVM's +v path is 2-20x slower)"
        if model.vlen_bits:
            assert f"+zvl{model.vlen_bits}b" in mattr and f"vlen={model.vlen_bits}" in tc.qemu_cpu
            assert p.params["sim"]["vector_lanes"] == model.vlen_bits // 32


@pytest.mark.parametrize("name", SIM_PROFILES)
def test_every_number_cites_a_source_or_says_it_is_an_estimate(name):
    text = (data_dir("hw_profiles") / f"{name}.toml").read_text()
    table = None
    for line in text.splitlines():
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            table = m.group(1)
            continue
        if table in TABLES and re.match(r"^\w+\s*=\s*[-\d.e]+", line):
            assert re.search(r"#\s*(source|estimate|unused)", line), f"{name}.toml [{table}]: {line!r}: no source"


def test_search_spaces_exist_for_every_family_and_class():
    root = data_dir("search_spaces")
    # Winograd convolutions are the host's (woodpecker.targets.cpu turns the pass on): no simulated target has them
    families = {p.stem for p in (root / "cpu").glob("*.toml")} - {"conv2d_winograd"}
    for cls in ("riscv", "mcu"):
        files = {p.stem: p for p in (root / cls).glob("*.toml")}
        assert set(files) == families
        for path in files.values():
            data = tomllib.loads(path.read_text())
            assert data["target_class"] == cls and data["family"] == path.stem


def test_spaces_and_defaults_fit_each_register_file(tiny_cnn_lowered):
    from woodpecker.sim.riscv.schedules import space_for, vector_lanes

    _, lowered = tiny_cnn_lowered
    conv = [t for t in lowered.tasks.values() if t.family == "conv2d_nchwc"][-1]
    for name in SIM_PROFILES:
        p = load_profile(name)
        for task in lowered.tasks.values():
            space = space_for(task, p)
            assert space.is_valid(space.default), (name, task.family, space.violations(space.default))
        space = space_for(conv, p)
        lanes = vector_lanes(p)
        # the 16-channel block: lanes/LMUL groups on RVV, unrolled scalar accumulators elsewhere
        registers = space.default["tile_x"] * space.default["tile_y"] * -(-16 // lanes)
        assert registers <= 16
        spill = space.point({"tile_x": 4, "tile_y": 4, "tile_ko": 16})
        assert not space.is_valid(spill), f"{name}: 4x4 tiles of 16 channels exceed 32 registers"


def _counts(**kw) -> dict[str, int]:
    return {k: kw.get(k, 0) for k in COUNTER_NAMES}


def test_cycle_model_formulas():
    p = load_profile("rv64gcv256")
    m = CycleModel.from_profile(p)
    # vector beats: LMUL-weighted ops x VLEN/DLEN (256/128 = 2); misses at their penalties
    c = _counts(insns=10, vfma=10, v_lmul_weighted=20, l1_misses=3, l2_misses=1)
    expected = 10 * m.class_cost("vfma") + 20 * 2 + 3 * m.l1_miss_cycles + 1 * m.l2_miss_cycles
    assert m.cycles(c) == pytest.approx(expected)
    assert m.class_cost("alu") == pytest.approx(1 / m.issue_width)  # dual issue, latency 1
    assert m.class_cost("div") == pytest.approx(12 + m.stall_fraction * 11)  # not pipelined

    # a cluster: serial part + per launch the slowest core + launch overhead
    region = _counts(insns=1000, alu=1000)
    tasks = tuple(TaskCounts(0, 0, i, _counts(insns=n, alu=n)) for i, n in enumerate([300, 200, 100]))
    est = m.estimate(SimCounts((region,), tasks, False))
    alu = m.class_cost("alu")
    assert est.serial_cycles == pytest.approx(400 * alu)
    assert est.cycles == pytest.approx(400 * alu + 300 * alu + m.parallel_launch_cycles)
    assert est.per_core_insns[:3] == (300, 200, 100) and est.launches == 1
    assert est.seconds == pytest.approx(est.cycles / m.clock_hz)


def test_missing_toolchain_names_the_packages(monkeypatch):
    import shutil

    from woodpecker.sim.riscv import toolchain

    toolchain._toolchain.cache_clear()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    try:
        with pytest.raises(TargetError, match="gcc-riscv64-unknown-elf") as err:
            toolchain.toolchain_for(load_profile("rv32imf"))
        assert "\n" not in str(err.value) and "apt-get install" in str(err.value)
    finally:
        toolchain._toolchain.cache_clear()


def test_malformed_profile_is_named(tmp_path):
    src = (data_dir("hw_profiles") / "rv32imf.toml").read_text()
    bad = tmp_path / "profiles"
    bad.mkdir()
    (bad / "broken.toml").write_text(src.replace("fma = 5", "fmaa = 5").replace('id = "rv32imf"', 'id = "broken"'))
    p = load_profile("broken", pathlib.Path(bad))
    with pytest.raises(TargetError, match=r"broken.toml: \[latency_cycles\] has no entry for class 'fma'"):
        CycleModel.from_profile(p)
