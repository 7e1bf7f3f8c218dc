"""Measured peak float32 throughput of the host CPU (the roofline's compute ceiling in reports).

A nominal figure (cores x clock x FLOPs per cycle) is misleading on machines whose clock boosts above the
advertised one, so the ceiling is measured: a TVM kernel whose accumulators stay in registers (independent FMA
chains, one broadcast load per eight vector FMAs) run on every core, and, for comparison, a large OpenBLAS SGEMM
through numpy. The larger of the two is the peak.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class Peak:
    fma_gflops: float  # register-resident FMA chains
    sgemm_gflops: float  # numpy (OpenBLAS) 2048^3 SGEMM
    threads: int
    bandwidth_gbs: float = 0.0  # memory bandwidth: a 256 MiB copy (read + write bytes per second)

    @property
    def gflops(self) -> float:
        return max(self.fma_gflops, self.sgemm_gflops)


def _fma_kernel_gflops(threads: int, lanes: int = 64, rows: int = 64, k: int = 20000) -> float:
    import tvm
    from tvm import s_tir, te

    from woodpecker.hw.host import llvm_target

    x = te.placeholder((rows, lanes), name="X")
    w = te.placeholder((k,), name="W")
    r = te.reduce_axis((0, k), "r")
    y = te.compute((rows, lanes), lambda t, v: te.sum(x[t, v] * w[r], axis=r), name="Y")
    sch = s_tir.Schedule(te.create_prim_func([x, w, y]))
    blk = sch.get_sblock("Y")
    t, v, rr = sch.get_loops(blk)
    sch.reorder(t, rr, v)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, t)
    sch.parallel(t)
    sch.vectorize(v)  # one independent FMA chain per vector register of the row (see _fma_lanes)
    init = sch.decompose_reduction(blk, rr)
    sch.vectorize(sch.get_loops(init)[-1])
    ex = tvm.compile(sch.mod, target=llvm_target(threads))
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.random.rand(rows, lanes).astype("float32"), dev),
            tvm.runtime.tensor((np.random.rand(k) * 1e-4).astype("float32"), dev),
            tvm.runtime.empty((rows, lanes), "float32", dev)]
    res = ex.mod.time_evaluator("main", dev, number=3, repeat=7)(*args)
    return 2.0 * rows * lanes * k / min(res.results) / 1e9


def _sgemm_gflops(n: int = 2048, repeat: int = 5) -> float:
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def _copy_bandwidth_gbs(nbytes: int = 256 << 20, repeat: int = 5) -> float:
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * nbytes / best / 1e9


@functools.lru_cache(maxsize=2)
def measure_peak(threads: int | None = None) -> Peak:
    from woodpecker import config

    threads = threads or config.prepare_tvm_threads()
    return Peak(_fma_kernel_gflops(threads, _fma_lanes()), _sgemm_gflops(), threads, _copy_bandwidth_gbs())


def _fma_lanes() -> int:
    """Lanes of the FMA kernel's row: one independent accumulator chain per register in half the register file
    (8 ymm on AVX2, 16 zmm on AVX-512). Two FMA ports x 4 cycles of latency need 8 chains in flight; with the
    AVX2 row of 64 lanes an AVX-512 host had 4 zmm chains and measured half its peak."""
    from woodpecker.hw.host import detect

    host = detect()
    return max(1, host.vector_bits // 32) * host.vector_registers // 2
