"""Shared helpers of the benchmarks: sessions, thread count, machine description, geometric mean.

Whole-model timing lives in woodpecker.measure.isolated (one process per contender, interleaved rounds), shared with
`woodpecker bench`."""

from __future__ import annotations

import math
import os
import platform


def ort_session(model_bytes: bytes, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def geomean(xs) -> float:
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def machine() -> str:
    try:
        from woodpecker.hw.host import detect

        h = detect()
        return f"{h.model_name} ({h.mcpu}, {h.cores} threads, {'/'.join(h.features)})"
    except Exception:  # noqa: BLE001
        return platform.processor()


def threads() -> int:
    return int(os.environ.get("TVM_NUM_THREADS") or os.cpu_count() or 1)


def time_against_onnxruntime(proto, builds, feed, n_threads: int, rounds: int, per_round: int, env=None):
    """Time onnxruntime on `proto` and each woodpecker build (label -> CompiledModel, None skipped), each saved and
    loaded as a user would, in fresh processes (woodpecker.measure.isolated); the Timings, onnxruntime first.
    `env`: label -> environment variables set in that build's workers (e.g. a runtime setting switched off)."""
    import tempfile

    from woodpecker.measure.isolated import Recipe, time_isolated

    with tempfile.TemporaryDirectory() as work:
        model_path = os.path.join(work, "model.onnx")
        with open(model_path, "wb") as f:
            f.write(proto.SerializeToString())
        recipes = [Recipe("onnxruntime", "baseline", model_path)]
        for i, (label, cm) in enumerate(builds.items()):
            if cm is not None:
                path = os.path.join(work, f"build{i}.wpk")
                cm.save(path)
                # a planned mix sets its wait policies when loaded
                recipes.append(Recipe(label, "artifact", path, env=tuple(sorted((env or {}).get(label, {}).items()))))
        return time_isolated(recipes, feed, n_threads, rounds=rounds, per_round=per_round)


def write_results(path, rows, n_threads: int, **extra) -> None:
    """The benchmark's rows as JSON, with the machine and thread count they were measured with (no-op for None)."""
    if not path:
        return
    import json

    with open(path, "w") as f:
        json.dump({"machine": machine(), "threads": n_threads, **extra, "rows": rows}, f, indent=1)


def compare_line(a, b) -> str:
    """'A 4.1 ms (4.0-4.3) vs B 6.0 ms (5.8-6.2): 1.46x, beyond the spread' (B's time over A's)."""
    from woodpecker.measure.decision import beats

    noise = "beyond the spread" if beats(a, b) or beats(b, a) else "within noise"
    return f"{a.name} {a.describe()} vs {b.name} {b.describe()}: {b.median_ms / a.median_ms:.2f}x, {noise}"


def quartiles(xs: list[float]) -> tuple[float, float]:
    """First and third quartiles of per-process figures (the spread the in-process benchmarks report)."""
    import statistics

    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def outputs_agree(reference, other, rel: float = 1e-3) -> bool:
    """Whether two runs' outputs agree to `rel` of the reference's largest magnitude."""
    import numpy as np

    scale = max(float(np.max(np.abs(reference))), 1e-30)
    return float(np.max(np.abs(np.asarray(other) - reference))) <= rel * scale


def alternated_blocks(runs, rounds: int, block_runs: int, before_block=None) -> list[float]:
    """Time two or more runners inside this process: `rounds` rounds, each a block of `block_runs` runs of every
    runner in turn, the order rotating by round (two runners: alternating), so that no runner always follows the
    same one; `before_block` (if given) is called before every block. Per runner, the median over the rounds of
    each block's median, in ms."""
    import statistics
    import time

    per_round: list[list[float]] = [[] for _ in runs]
    for r in range(rounds):
        for i in [(r + k) % len(runs) for k in range(len(runs))]:
            if before_block is not None:
                before_block()
            times = []
            for _ in range(block_runs):
                t0 = time.perf_counter()
                runs[i]()
                times.append(time.perf_counter() - t0)
            per_round[i].append(statistics.median(times) * 1e3)
    return [statistics.median(ms) for ms in per_round]


# Two threads, pinned to the first two CPUs this process may use, bounce one cache line: the round trip is ~60 ns
# where both cores share a last-level cache and ~350 ns where they do not. On these 2-vCPU VMs the host moves the
# vCPUs between core complexes every few tens of seconds, and that placement, not the process, is what the "fast"
# and "slow" modes are: ViT-B/16's own build 180 vs 225 ms, its dense layers re-reading their weights through two
# separate L3s (benchmarks/results/kernels/README.md, "The VMs' two modes").
_ROUNDTRIP_C = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
static _Atomic int flag __attribute__((aligned(64)));
static int cpus[2];
static long count;
static void pin(int c) {
  cpu_set_t s; CPU_ZERO(&s); CPU_SET(c, &s); pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
static void *echo(void *unused) {
  pin(cpus[1]);
  for (long i = 0; i < count; i++) { while (atomic_load(&flag) != 1) {} atomic_store(&flag, 0); }
  return unused;
}
double roundtrip_ns(int first, int second, long n) {
  cpus[0] = first; cpus[1] = second; count = n; atomic_store(&flag, 0);
  cpu_set_t before; pthread_getaffinity_np(pthread_self(), sizeof before, &before);
  pin(first);
  pthread_t t; pthread_create(&t, 0, echo, 0);
  struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) { atomic_store(&flag, 1); while (atomic_load(&flag) != 0) {} }
  clock_gettime(CLOCK_MONOTONIC, &b);
  pthread_join(t, 0);
  pthread_setaffinity_np(pthread_self(), sizeof before, &before);
  return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
}
"""
SPLIT_CACHE_NS = 200.0  # round trips above this: the two cores did not share a last-level cache
_roundtrip = None


def split_l3_share(roundtrips_ns: list[float]) -> float:
    """The share of `roundtrips_ns` (one per timed block) taken while the two cores shared no last-level cache."""
    return sum(r > SPLIT_CACHE_NS for r in roundtrips_ns) / max(1, len(roundtrips_ns))


def core_roundtrip_ns(iterations: int = 100_000) -> float | None:
    """The cache-line round trip between the first two CPUs of this process, in ns (about 10 ms of both cores);
    None where there is one CPU or no C compiler (`cc`) to build the probe."""
    global _roundtrip
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    if _roundtrip is None:
        import ctypes
        import shutil
        import subprocess
        import tempfile

        if shutil.which("cc") is None:
            return None
        work = tempfile.mkdtemp(prefix="wp-roundtrip-")
        src, lib = os.path.join(work, "roundtrip.c"), os.path.join(work, "roundtrip.so")
        with open(src, "w") as f:
            f.write(_ROUNDTRIP_C)
        if subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-pthread", src, "-o", lib], capture_output=True).returncode:
            return None
        _roundtrip = ctypes.CDLL(lib).roundtrip_ns
        shutil.rmtree(work, ignore_errors=True)  # the library stays mapped
        _roundtrip.restype = ctypes.c_double
        _roundtrip.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long]
    return float(_roundtrip(cpus[0], cpus[1], iterations))
