"""Measured peak float32 throughput of the host CPU (the roofline's compute ceiling in reports).

A nominal figure (cores x clock x FLOPs per cycle) is misleading on machines whose clock boosts above the
advertised one, so the ceiling is measured: a TVM kernel whose accumulators stay in registers (independent FMA
chains, one broadcast load per eight vector FMAs) run on every core, and, for comparison, a large OpenBLAS SGEMM
through numpy. The larger of the two is the peak.

The measurement runs in a fresh process of its own, started with TVM_NUM_THREADS set to the thread count asked
for. Why: TVM reads TVM_NUM_THREADS once, when its pool starts, so a process whose pool had started with another
count measured that count; and in a process where other runtimes ran (a bench compiles with onnxruntime and
PyTorch choices, runs reference sessions, tunes), their worker threads and TVM's pinned worker share the cores.
A bench on a 2-core znver4 host measured 117 GFLOP/s, one core's rate, while its convolutions reached 207.
The FMA kernel runs twice: on one thread (one core's rate) and on `threads`. Each figure is its fastest single run
(about a millisecond) out of hundreds spread over half a second, since no run can beat the cores. The ceiling is the
largest of the SGEMM, the all-threads FMA run and `threads` x one core's rate: on a machine shared with other work
the all-threads run can find a core taken for its whole life (the scheduler leaves two threads of one process on
one core while a third process holds the other: 117 GFLOP/s on 2 threads of a host whose single core gives 117),
while one core's rate holds, and a roofline's ceiling must not sit below the kernels measured under it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class Peak:
    fma_gflops: float  # register-resident FMA chains on all `threads`
    sgemm_gflops: float  # numpy (OpenBLAS) 2048^3 SGEMM
    threads: int
    bandwidth_gbs: float = 0.0  # memory bandwidth: the larger of a 512 MiB read on `threads` and a 256 MiB copy
    fma_core_gflops: float = 0.0  # the FMA kernel on one thread: one core's rate

    @property
    def gflops(self) -> float:
        return max(self.fma_gflops, self.sgemm_gflops, self.threads * self.fma_core_gflops)


def _fma_kernel_gflops(threads: int, lanes: int = 64, rows: int = 64, k: int = 4000, attempts: int = 10,
                       runs: int = 50) -> float:
    """From the fastest of `attempts` x `runs` single runs, the attempts 50 ms apart; `threads` 1 is a serial
    kernel. The rows are split across the threads by a parallel outer loop: each thread owns whole rows, so no two
    threads share an accumulator. `k` keeps a run near 0.5 ms on a 2-core AVX-512 host (1 ms on one core): long
    against the thread pool's wake-up, short against a burst of other work."""
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
    if threads > 1:
        sch.parallel(t)
    sch.vectorize(v)  # one independent FMA chain per vector register of the row (see _fma_lanes)
    init = sch.decompose_reduction(blk, rr)
    sch.vectorize(sch.get_loops(init)[-1])
    ex = tvm.compile(sch.mod, target=llvm_target(threads))
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.random.rand(rows, lanes).astype("float32"), dev),
            tvm.runtime.tensor((np.random.rand(k) * 1e-4).astype("float32"), dev),
            tvm.runtime.empty((rows, lanes), "float32", dev)]
    timer = ex.mod.time_evaluator("main", dev, number=1, repeat=runs)
    timer(*args)  # starts the thread pool and warms the caches
    best_s = float("inf")
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.05)
        best_s = min(best_s, min(timer(*args).results))
    return 2.0 * rows * lanes * k / best_s / 1e9


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


def _read_bandwidth_gbs(threads: int, nbytes: int = 512 << 20, streams: int = 4, lanes: int = 16,
                        buffers: int = 3, attempts: int = 5) -> float:
    """Read bandwidth on `threads`: a TVM kernel that sums a buffer far above any cache, 8 chunks per thread, each
    chunk read as `streams` sequential streams at once (one vector of `lanes` floats from each per step); the fastest
    run of `attempts` on each of `buffers` fresh buffers.

    Why not the copy alone: numpy's copy runs on one thread and writes as much as it reads, while what a roofline
    asks of memory is a model's weights read once per run by every core, as a batch-1 dense layer reads its weight
    panels: several streams per core. On the 2-core znver4 VM the copy gave 22.7 GB/s and one stream per thread 35,
    while VGG-19's first FC layer (tuned: 4 panels per thread) streamed its 411 MB at 57 GB/s. Why several buffers:
    on that VM the same read ran at 33-43 GB/s on one allocation and 55-60 on the next (huge pages on both), and a
    ceiling must not sit below what the kernels reach."""
    import tvm

    from woodpecker.runtime.host_memory import host_buffer

    chunks = 8 * max(1, threads)
    rows = nbytes // 4 // (chunks * streams * lanes)
    shape = (chunks, streams, rows, lanes)
    ex = _stream_sum(threads, shape)
    dev = tvm.cpu()
    out = tvm.runtime.empty((chunks, streams, lanes), "float32", dev)
    timer = ex.mod.time_evaluator("main", dev, number=1, repeat=attempts)
    best_gbs = 0.0
    for _ in range(buffers):
        # in huge pages where Linux allows, as the executor holds a model's constants (woodpecker.runtime.host_memory)
        data = host_buffer(chunks * streams * rows * lanes * 4, huge=True).view(np.float32)
        data[...] = 1.0
        x = tvm.runtime.from_dlpack(data.reshape(shape))
        timer(x, out)  # starts the thread pool, maps the pages
        best_gbs = max(best_gbs, data.nbytes / min(timer(x, out).results) / 1e9)
        del x, data
    return best_gbs


def _stream_sum(threads: int, shape: tuple[int, int, int, int]):
    """The read kernel: Y[c, t, v] = sum over r of X[c, t, r, v], chunks c in parallel, at each step r one vector
    of v from each of the t streams (unrolled), so that every thread reads t sequential streams at once."""
    from tvm import compile as tvm_compile
    from tvm import s_tir, te

    from woodpecker.hw.host import llvm_target

    chunks, streams, rows, lanes = shape
    x = te.placeholder(shape, name="X")
    r = te.reduce_axis((0, rows), "r")
    y = te.compute((chunks, streams, lanes), lambda c, t, v: te.sum(x[c, t, r, v], axis=r), name="Y")
    sch = s_tir.Schedule(te.create_prim_func([x, y]))
    blk = sch.get_sblock("Y")
    c, t, v, rr = sch.get_loops(blk)
    sch.reorder(c, rr, t, v)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, c)
    if threads > 1:
        sch.parallel(c)
    sch.unroll(t)
    sch.vectorize(v)
    init = sch.decompose_reduction(blk, rr)
    sch.vectorize(sch.get_loops(init)[-1])
    return tvm_compile(sch.mod, target=llvm_target(threads))


def measure_here(threads: int) -> Peak:
    """Measure in this process: only right where TVM's pool has not started, or started with `threads`."""
    lanes = _fma_lanes()
    bandwidth = max(_read_bandwidth_gbs(threads), _copy_bandwidth_gbs())
    return Peak(_fma_kernel_gflops(threads, lanes), _sgemm_gflops(), threads, bandwidth,
                _fma_kernel_gflops(1, lanes))


@functools.lru_cache(maxsize=2)
def measure_peak(threads: int | None = None, timeout_s: float = 300.0) -> Peak:
    """Measure in a fresh process with `threads` threads for TVM and OpenBLAS (default: the configured count)."""
    from woodpecker import config
    from woodpecker.errors import WoodpeckerError

    threads = int(threads or config.get().num_threads)
    # TVM_BIND_THREADS=0: TVM pins its workers to cores, and a pinned worker cannot leave a core another process
    # holds; unpinned, the scheduler can give both threads a core whenever two are free.
    env = {**os.environ, "TVM_NUM_THREADS": str(threads), "WOODPECKER_NUM_THREADS": str(threads),
           "TVM_BIND_THREADS": "0", "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    code = ("from woodpecker.config import skip_torch_import; skip_torch_import(); "
            f"from woodpecker.hw.peak import _child_main; _child_main({threads})")
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise WoodpeckerError(f"measuring the CPU's peak took over {timeout_s:.0f} s") from None
    last = done.stdout.strip().splitlines()[-1:] if done.stdout else []
    if done.returncode != 0 or not last:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WoodpeckerError(f"measuring the CPU's peak failed (exit status {done.returncode}): {tail}")
    return Peak(**json.loads(last[0]))


def _child_main(threads: int) -> None:
    print(json.dumps(dataclasses.asdict(measure_here(threads))), flush=True)


def _fma_lanes() -> int:
    """Lanes of the FMA kernel's row: one independent accumulator chain per register in half the register file
    (8 ymm on AVX2, 16 zmm on AVX-512). Two FMA ports x 4 cycles of latency need 8 chains in flight; with the
    AVX2 row of 64 lanes an AVX-512 host had 4 zmm chains and measured half its peak."""
    from woodpecker.hw.host import detect

    host = detect()
    return max(1, host.vector_bits // 32) * host.vector_registers // 2
