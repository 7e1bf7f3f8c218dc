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
