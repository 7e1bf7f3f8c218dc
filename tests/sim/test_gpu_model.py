"""The analytical GPU model ranks hand-made kernels whose order is known, on every GPU profile.

Kernels: a copy with coalesced vs strided reads; the 1024^3 SGEMM variants of shared/notes/simulation.md
(naive, 16x16 shared-memory tiles, 64x64 register tiles); a column sum through shared memory with and without
bank conflicts; the same memory-bound kernel at high and low occupancy.
"""

from __future__ import annotations

import pytest

from woodpecker.hw.profile import load_profile
from woodpecker.sim.gpu.features import extract_module
from woodpecker.sim.gpu.lower import lower_device
from woodpecker.sim.gpu.model import GpuLaunchError, estimate

tvm = pytest.importorskip("tvm")
from tvm import s_tir, te  # noqa: E402

GPUS = ("p100", "v100", "t4", "a100", "h100")
PROFILES = {g: load_profile(g) for g in GPUS}
SGEMM = {
    "naive": dict(
        thread_m=16, thread_n=16, inner_m=1, inner_n=1, stage=0, split_k=1024, unroll=0, pad_smem=0
    ),
    "smem_16x16": dict(
        thread_m=16, thread_n=16, inner_m=1, inner_n=1, stage=1, split_k=16, unroll=0, pad_smem=0
    ),
    "reg_64x64": dict(
        thread_m=16, thread_n=16, inner_m=4, inner_n=4, stage=1, split_k=8, unroll=512, pad_smem=0
    ),
}


def _features(mod, arch="sm_80"):
    return extract_module(lower_device(mod, arch))


def _copy(n: int, strided: bool, threads: int = 256):
    A = te.placeholder((n,), name="A")
    if strided:  # the transpose of a 32-column matrix: lane i reads element 32 i (mod n), one sector per lane
        rows = n // 32
        B = te.compute((n,), lambda i: A[(i % rows) * 32 + i // rows], name="B")
    else:
        B = te.compute((n,), lambda i: A[i], name="B")
    sch = s_tir.Schedule(tvm.IRModule({"main": te.create_prim_func([A, B])}))
    (i,) = sch.get_loops(sch.get_sblock("B"))
    bx, tx = sch.split(i, [None, threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return sch.mod


def _column_sum(blocks: int, conflicted: bool, padded: bool = False):
    """out[b, t] = sum over k and 4 neighbours r of a 32x32 tile staged in shared memory (each staged value
    read 4 times, so that shared memory, not DRAM, sets the pace): lane t reads S[k, (t + r) % 32] (one word
    per bank) or, conflicted, S[(t + r) % 32, k] (32 lanes 32 words apart: all in one bank)."""
    A = te.placeholder((blocks * 32, 32), name="A")
    k = te.reduce_axis((0, 32), name="k")
    r = te.reduce_axis((0, 4), name="r")
    if conflicted:
        out = te.compute(
            (blocks, 32), lambda b, t: te.sum(A[b * 32 + (t + r) % 32, k], axis=[k, r]), name="out"
        )
    else:
        out = te.compute(
            (blocks, 32), lambda b, t: te.sum(A[b * 32 + k, (t + r) % 32], axis=[k, r]), name="out"
        )
    sch = s_tir.Schedule(tvm.IRModule({"main": te.create_prim_func([A, out])}))
    blk = sch.get_sblock("out")
    b, t, kk, rr = sch.get_loops(blk)
    sch.bind(b, "blockIdx.x")
    sch.bind(t, "threadIdx.x")
    acc = sch.cache_write(blk, 0, "local")  # the sum stays in a register
    sch.reverse_compute_at(acc, t)
    cache = sch.cache_read(blk, 0, "shared")
    sch.compute_at(cache, b)
    if padded:
        sch.storage_align(cache, 0, 0, 32, 1)
    fused = sch.fuse(*sch.get_loops(cache)[1:])
    _, ft = sch.split(fused, [None, 32])
    sch.bind(ft, "threadIdx.x")
    return sch.mod


@pytest.fixture(scope="module")
def sgemm():
    from woodpecker.schedule.apply import schedule
    from woodpecker.space.space import space_for_task
    from woodpecker.testing.kernels import make_task

    task = make_task("batch_matmul", dict(BT=1, BA=1, BB=1, M=1024, K=1024, N=1024), name="sgemm")
    space = space_for_task(task, "gpu")
    return task, {name: _features(schedule(task, space.point(k), "gpu")) for name, k in SGEMM.items()}


def test_features_count_the_work_exactly(sgemm):
    task, feats = sgemm
    for name, f in feats.items():
        assert f[0].flops == pytest.approx(task.flops), name  # 2 x 1024^3: every FMA once, nothing else
    reg = feats["reg_64x64"][0]
    assert (reg.grid_blocks, reg.threads_per_block, reg.local_elements_per_thread) == (256, 256, 16)
    # nvcc keeps the 4 A and 4 B values of one k step in registers for the 16 FMAs: 8 shared loads per 16 FMAs
    assert reg.shared_load_instr_per_thread == pytest.approx(reg.fp_instr_per_thread / 2)


def test_register_tiling_beats_naive_sgemm_on_every_gpu(sgemm):
    _, feats = sgemm
    for gpu, p in PROFILES.items():
        t = {name: estimate(f, p).seconds for name, f in feats.items()}
        assert t["reg_64x64"] < t["naive"], (gpu, t)
        assert t["reg_64x64"] < t["smem_16x16"], (gpu, t)


def test_a_faster_gpu_estimates_the_same_compute_bound_kernel_faster(sgemm):
    _, feats = sgemm
    reg = feats["reg_64x64"]
    p100, h100 = estimate(reg, PROFILES["p100"]), estimate(reg, PROFILES["h100"])
    assert p100.limiter in ("flop", "issue", "lsu"), "the register-tiled SGEMM is compute bound"
    assert h100.seconds < p100.seconds / 2
    order = [estimate(reg, PROFILES[g]).seconds for g in ("t4", "p100", "v100", "a100", "h100")]
    assert order == sorted(order, reverse=True), order  # peak FLOP/s rises in this order


def test_coalesced_reads_beat_strided_reads():
    n = 1 << 24  # 64 MB: larger than every L2
    coalesced, strided = _features(_copy(n, False))[0], _features(_copy(n, True))[0]
    assert coalesced.global_sectors_per_request == pytest.approx(
        2 * 4 / 2
    )  # 4-byte lanes: 4 sectors per request
    assert strided.global_sectors_per_request > 16
    for gpu, p in PROFILES.items():
        c, s = estimate(coalesced, p), estimate(strided, p)
        assert c.limiter == "dram", (gpu, c)
        assert s.seconds > 2 * c.seconds, (gpu, c.seconds, s.seconds)


def test_more_occupancy_beats_less_when_memory_bound():
    f = _features(_copy(1 << 24, False))
    for gpu, p in PROFILES.items():
        high, low = estimate(f, p, registers=32), estimate(f, p, registers=255)
        assert high.occupancy > low.occupancy
        assert high.seconds < low.seconds, (gpu, high, low)


def test_bank_conflicts_cost_more():
    clean = _features(_column_sum(4096, False))[0]
    conflicted = _features(_column_sum(4096, True))[0]
    padded = _features(_column_sum(4096, True, padded=True))[0]
    assert clean.bank_conflict_degree == pytest.approx(1.0, abs=0.05)
    assert conflicted.bank_conflict_degree > 16
    assert padded.bank_conflict_degree < 2, "one padding word per row spreads a column over the banks"
    for gpu, p in PROFILES.items():
        assert estimate(conflicted, p).seconds > estimate(clean, p).seconds, gpu
        assert estimate(padded, p).seconds < estimate(conflicted, p).seconds, gpu


def test_a_kernel_that_cannot_launch_is_an_error():
    f = _features(_copy(1 << 12, False, threads=256))[0]
    too_big = type(f).from_json({**f.to_json(), "smem_bytes_per_block": 64 * 1024})
    with pytest.raises(GpuLaunchError, match="shared memory"):
        estimate(too_big, PROFILES["a100"])


def test_terms_and_the_limiter_are_reported():
    f = _features(_copy(1 << 20, False))
    e = estimate(f, PROFILES["v100"])
    assert set(e.terms) == {"flop", "issue", "lsu", "l2", "dram", "launch"}
    assert e.seconds == pytest.approx(e.terms[e.limiter] + e.terms["launch"])
    assert 0 < e.occupancy <= 1 and e.blocks_per_sm >= 1


def test_fitting_the_register_file_beats_spilling(sgemm):
    _, feats = sgemm
    reg = feats["reg_64x64"][0]  # 16 accumulators per thread: fits every GPU's register file
    # the same kernel asked to hold 200 values per thread: 24 + 2 x 200 registers exceed the 255 a thread can have
    greedy = type(reg).from_json({**reg.to_json(), "local_elements_per_thread": 200})
    for gpu, p in PROFILES.items():
        fits, spills = estimate(reg, p), estimate(greedy, p)
        assert fits.spilled_registers == 0 and spills.spilled_registers > 0, gpu
        assert spills.seconds > 1.2 * fits.seconds, (gpu, fits.seconds, spills.seconds)


def test_ptxas_spill_bytes_count_as_spills(sgemm):
    _, feats = sgemm
    reg = feats["reg_64x64"]
    clean = estimate(reg, PROFILES["a100"], registers=64, spill_bytes=0)
    spilled = estimate(reg, PROFILES["a100"], registers=64, spill_bytes=256)
    assert clean.spilled_registers == 0 and spilled.spilled_registers == 32
    assert spilled.seconds > clean.seconds


def test_spilling_tile_loses_to_a_smaller_tile_that_fits():
    """A real schedule: 256 threads each holding a 16x16 accumulator tile need more than 255 registers and spill;
    the 8x8 tile fits. Without the spill term the bigger tile looked faster (twice the reuse per shared load)."""
    from woodpecker.schedule.apply import schedule
    from woodpecker.space.space import space_for_task
    from woodpecker.testing.kernels import make_task

    task = make_task("batch_matmul", dict(BT=1, BA=1, BB=1, M=2048, K=512, N=2048), name="sgemm2k")
    space = space_for_task(task, "gpu")
    base = dict(thread_m=16, thread_n=16, stage=1, split_k=8, unroll=512, pad_smem=0)
    f8 = _features(schedule(task, space.point({**base, "inner_m": 8, "inner_n": 8}), "gpu"))
    f16 = _features(schedule(task, space.point({**base, "inner_m": 16, "inner_n": 16}), "gpu"))
    assert f16[0].local_elements_per_thread == 256 and f8[0].local_elements_per_thread == 64
    for gpu, p in PROFILES.items():
        e8, e16 = estimate(f8, p), estimate(f16, p)
        assert e16.spilled_registers > 0 and e8.spilled_registers == 0, gpu
        assert e8.seconds < e16.seconds, (gpu, e8.seconds, e16.seconds)
