"""Simulated kernels: outputs match numpy on every RISC-V/MCU profile, and the estimates rank schedules sensibly
(vectors beat scalars, a register tile that fits beats one that spills, a cache-hostile order misses more, a
cluster reports what each core runs)."""

from __future__ import annotations

import numpy as np
import pytest
from riscv_helpers import conv_module, conv_reference, matmul_module

from woodpecker.errors import TargetError
from woodpecker.sim.riscv.kernel import build_kernel_object, simulate_kernel
from woodpecker.sim.riscv.qemu import SimulationError

PROFILES = ["rv64gc", "rv64gcv128", "rv64gcv256", "rv32imf", "esp32c3"]


@pytest.mark.parametrize("profile", PROFILES)
def test_matmul_matches_numpy(objects, profile):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 20)).astype(np.float32)
    b = rng.standard_normal((20, 24)).astype(np.float32)
    obj = objects("mm-12x24x20", profile, lambda: matmul_module(12, 24, 20, order="ikj", vector=8))
    r = simulate_kernel(obj, "mm", [a, b], (12, 24), "float32", profile)
    np.testing.assert_allclose(r.output, a @ b, rtol=1e-4, atol=1e-4)
    assert r.counts["insns"] > 0 and r.cycles > 0 and r.seconds == pytest.approx(r.cycles / _clock(profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_conv_matches_numpy(objects, profile):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 10, 10)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    obj = objects("conv-4x10x8", profile, lambda: conv_module(4, 10, 8))
    r = simulate_kernel(obj, "conv", [x, w], (1, 8, 10, 10), "float32", profile)
    np.testing.assert_allclose(r.output, conv_reference(x, w), rtol=1e-4, atol=1e-4)


def test_soft_float_mcu_runs_many_more_instructions(objects):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 20)).astype(np.float32)
    b = rng.standard_normal((20, 24)).astype(np.float32)
    factory = lambda: matmul_module(12, 24, 20, order="ikj", vector=8)  # noqa: E731
    hard = simulate_kernel(objects("mm-12x24x20", "rv32imf", factory), "mm", [a, b], (12, 24), "float32", "rv32imf")
    soft = simulate_kernel(objects("mm-12x24x20", "esp32c3", factory), "mm", [a, b], (12, 24), "float32", "esp32c3")
    assert soft.counts["fma"] == 0 and soft.counts["fload"] == 0, "rv32imc has no FPU: libgcc soft-float"
    assert soft.counts["insns"] > 10 * hard.counts["insns"]


def test_vectorized_rvv_beats_scalar(objects):
    """The same 16-lane schedule compiled with and without RVV, costed with the same (C906-class) tables."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((32, 64)).astype(np.float32), rng.standard_normal((64, 64)).astype(np.float32)
    factory = lambda: matmul_module(32, 64, 64, order="ikj", vector=16)  # noqa: E731
    scalar = simulate_kernel(objects("mm-32x64x64-v16", "rv64gc", factory), "mm", [a, b], (32, 64), "float32",
                             "rv64gcv128")
    vector = simulate_kernel(objects("mm-32x64x64-v16", "rv64gcv128", factory), "mm", [a, b], (32, 64), "float32",
                             "rv64gcv128")
    np.testing.assert_allclose(vector.output, scalar.output, rtol=1e-5, atol=1e-5)
    assert scalar.counts["vfma"] == 0 and vector.counts["vfma"] > 0
    assert vector.counts["insns"] * 4 < scalar.counts["insns"]
    assert vector.cycles * 2 < scalar.cycles


@pytest.mark.parametrize("profile, fits, spills", [
    # scalar core: 16 accumulators fit the 32 FP registers, 4 x 16 = 64 do not
    ("rv64gc", {"tile_x": 1, "tile_y": 1, "tile_ko": 16}, {"tile_x": 4, "tile_y": 1, "tile_ko": 16}),
    # VLEN=128: 4 x 1 x (16 lanes = 4 registers) = 16 vector registers fit, 4 x 4 x 4 = 64 do not
    ("rv64gcv128", {"tile_x": 4, "tile_y": 1, "tile_ko": 16}, {"tile_x": 4, "tile_y": 4, "tile_ko": 16}),
])
def test_register_tile_that_fits_beats_one_that_spills(tmp_path, cnn_conv, profile, fits, spills):
    from woodpecker.schedule.apply import schedule
    from woodpecker.sim.riscv.schedules import default_knobs

    task, inputs, expected = cnn_conv
    results = {}
    for label, tile in (("fits", fits), ("spills", spills)):
        knobs = {**default_knobs(task, profile), **tile}
        obj = build_kernel_object(schedule(task, knobs, "riscv"), profile, tmp_path / f"{label}.o")
        results[label] = r = simulate_kernel(obj, task.name, inputs, expected.shape, "float32", profile)
        np.testing.assert_allclose(r.output, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    stores = "fstore" if profile == "rv64gc" else "vstore"
    assert results["spills"].counts[stores] > 4 * results["fits"].counts[stores], "spill code stores registers"
    assert results["fits"].cycles < results["spills"].cycles


def _scale_module(rows: int, cols: int, column_major: bool):
    import tvm
    from tvm import s_tir, te

    a = te.placeholder((rows, cols), name="A")
    b = te.compute((rows, cols), lambda i, j: a[i, j] * 2.0, name="B")
    sch = s_tir.Schedule(tvm.IRModule({"scale": te.create_prim_func([a, b]).with_attr("global_symbol", "scale")}))
    sch.work_on("scale")
    i, j = sch.get_loops(sch.get_sblock("B"))
    if column_major:
        sch.reorder(j, i)
    return sch.mod


def test_cache_hostile_loop_order_misses_more(objects):
    """128 KiB walked down its columns: every access is a new 64-byte line, and 1024 lines overflow a 32 KiB L1."""
    a = np.random.default_rng(3).standard_normal((1024, 32)).astype(np.float32)
    runs = {}
    for column_major in (False, True):
        obj = objects(f"scale-{column_major}", "rv64gc", lambda: _scale_module(1024, 32, column_major))
        runs[column_major] = simulate_kernel(obj, "scale", [a], a.shape, "float32", "rv64gc")
        np.testing.assert_array_equal(runs[column_major].output, 2 * a)
    rows, cols = runs[False].counts, runs[True].counts
    assert rows["mem_reads"] == cols["mem_reads"], "the same accesses, in another order"
    assert cols["l1_misses"] > 8 * rows["l1_misses"]
    assert runs[True].cycles > runs[False].cycles


def test_cluster_reports_per_core_counts(objects):
    """A parallel loop of 4 rows on the 8-core cluster: 4 cores work, 4 idle; 16 rows keep all 8 busy."""
    rng = np.random.default_rng(4)
    b = rng.standard_normal((32, 32)).astype(np.float32)
    per_core = {}
    for rows in (4, 16):
        a = rng.standard_normal((rows, 32)).astype(np.float32)
        obj = objects(f"mm-par-{rows}", "pulp8", lambda: matmul_module(rows, 32, 32, order="ikj", parallel=True))
        r = simulate_kernel(obj, "mm", [a, b], (rows, 32), "float32", "pulp8")
        np.testing.assert_allclose(r.output, a @ b, rtol=1e-4, atol=1e-4)
        assert len(r.per_core_insns) == 8
        per_core[rows] = r
    busy4 = [n for n in per_core[4].per_core_insns if n > 1000]
    assert len(busy4) == 4
    assert all(n > 1000 for n in per_core[16].per_core_insns)
    r16 = per_core[16]
    # a launch costs its slowest core: far less than running all eight tasks on one core
    assert r16.cycles < sum(r16.per_core_cycles) / 4


def test_failures_are_one_line_errors(objects, tmp_path):
    a = np.zeros((12, 20), np.float32)
    b = np.zeros((20, 24), np.float32)
    obj = objects("mm-12x24x20", "rv64gc", lambda: matmul_module(12, 24, 20, order="ikj", vector=8))
    with pytest.raises(SimulationError, match="Invalid B.shape"):  # the kernel's own argument check, reported
        simulate_kernel(obj, "mm", [a, np.zeros((20, 25), np.float32)], (12, 24), "float32", "rv64gc")
    with pytest.raises(SimulationError, match="did not finish within 0.001 s"):  # a hang is killed, not waited on
        simulate_kernel(obj, "mm", [a, b], (12, 24), "float32", "rv64gc", timeout_s=0.001)
    with pytest.raises(TargetError, match="not a simulated RISC-V target"):
        simulate_kernel(obj, "mm", [a, b], (12, 24), "float32", "host")


def _clock(profile: str) -> float:
    from woodpecker.hw.profile import load_profile

    return float(load_profile(profile).params["clock"]["hz"])
