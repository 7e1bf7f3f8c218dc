"""Shared helpers of the benchmarks: same-run, interleaved timing of several contenders, and result tables.

Method: every contender is warmed up, then timed in rounds; each round runs every contender `per_round` times
back to back, in turn (A B C A B C ...), so that drifts of the machine (clock, other load) hit all contenders
alike. A contender's figure is the median of all its single-run latencies; the spread is reported as the
interquartile range. Ratios are of medians measured in the same process, in the same run.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping


def interleaved(contenders: Mapping[str, Callable[[], object]], rounds: int = 10, per_round: int = 10,
                warmup: int = 5) -> dict[str, dict[str, float]]:
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    out = {}
    for name, xs in samples.items():
        xs = sorted(xs)
        q = statistics.quantiles(xs, n=4)
        out[name] = {"median_ms": statistics.median(xs) * 1e3, "p25_ms": q[0] * 1e3, "p75_ms": q[2] * 1e3,
                     "n": len(xs)}
    return out


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
