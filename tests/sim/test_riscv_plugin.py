"""The qemu counting plugin: builds once into the cache, counts deterministically, decodes RVC and RVV classes."""

from __future__ import annotations

import numpy as np
import pytest
from riscv_helpers import matmul_module

from woodpecker.sim.riscv.kernel import simulate_kernel
from woodpecker.sim.riscv.plugin import plugin_path
from woodpecker.sim.riscv.qemu import CLASSES


@pytest.fixture(scope="module")
def mm_inputs():
    rng = np.random.default_rng(1)
    return rng.standard_normal((32, 32)).astype(np.float32), rng.standard_normal((32, 32)).astype(np.float32)


def test_plugin_builds_once_into_the_cache():
    from woodpecker import config

    first = plugin_path()
    assert first.exists() and first.parent == config.get().cache_dir / "sim"
    mtime = first.stat().st_mtime_ns
    assert plugin_path() == first and first.stat().st_mtime_ns == mtime, "a second call reuses the built plugin"


@pytest.mark.parametrize("profile", ["rv64gcv128", "pulp8"])
def test_counts_are_deterministic(objects, mm_inputs, profile):
    a, b = mm_inputs
    obj = objects("mm-par", profile, lambda: matmul_module(32, 32, 32, order="ikj", vector=8, parallel=True))
    one = simulate_kernel(obj, "mm", [a, b], (32, 32), "float32", profile)
    two = simulate_kernel(obj, "mm", [a, b], (32, 32), "float32", profile)
    assert one.raw == two.raw, "same image, same counts: per region, per task and per class"
    assert one.cycles == two.cycles
    # every executed instruction falls in exactly one class
    assert sum(one.counts[c] for c in CLASSES) == one.counts["insns"]


def test_rvc_and_vector_classes_are_decoded(objects, mm_inputs):
    a, b = mm_inputs
    scalar = simulate_kernel(objects("mm-v8", "rv64gc", lambda: matmul_module(32, 32, 32, order="ikj", vector=8)),
                             "mm", [a, b], (32, 32), "float32", "rv64gc")
    assert scalar.counts["rvc"] > 0, "rv64gc code is compressed where it can be"
    assert scalar.counts["fma"] >= 32 * 32 * 32 and scalar.counts["vfma"] == 0
    mcu = simulate_kernel(objects("mm-v8", "rv32imf", lambda: matmul_module(32, 32, 32, order="ikj", vector=8)),
                          "mm", [a, b], (32, 32), "float32", "rv32imf")
    assert mcu.counts["rvc"] == 0, "rv32imf has no C extension"
    vec = simulate_kernel(objects("mm-v8", "rv64gcv128", lambda: matmul_module(32, 32, 32, order="ikj", vector=8)),
                          "mm", [a, b], (32, 32), "float32", "rv64gcv128")
    assert vec.counts["vfma"] > 0 and vec.counts["vload"] > 0 and vec.counts["vset"] > 0
    # 8 lanes on VLEN=128 is an LMUL=2 register group: every vector instruction weighs 2
    vector_insns = sum(vec.counts[c] for c in ("vload", "vstore", "vmem_strided_indexed", "varith", "vfma"))
    assert vec.counts["v_lmul_weighted"] == pytest.approx(2 * vector_insns, rel=0.05)


def test_lmul_weight_halves_with_twice_the_vlen(objects):
    """The same 16-lane loop is LMUL=4 at VLEN=128 and LMUL=2 at VLEN=256: same instructions, half the beats."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((64, 64)).astype(np.float32), rng.standard_normal((64, 64)).astype(np.float32)
    runs = {}
    for profile in ("rv64gcv128", "rv64gcv256"):
        obj = objects("mm64-v16", profile, lambda: matmul_module(64, 64, 64, order="ikj", vector=16))
        runs[profile] = simulate_kernel(obj, "mm", [a, b], (64, 64), "float32", profile, cache=False)
        np.testing.assert_allclose(runs[profile].output, a @ b, rtol=1e-4, atol=1e-4)
    v128, v256 = runs["rv64gcv128"].counts, runs["rv64gcv256"].counts
    assert v128["vfma"] == v256["vfma"] == 64 * 64 * 64 // 16
    assert v128["insns"] == pytest.approx(v256["insns"], rel=0.05)
    assert v128["v_lmul_weighted"] / v256["v_lmul_weighted"] == pytest.approx(2.0, rel=0.02)
    assert v128["l1_misses"] == 0, "cache=False runs no cache model"
