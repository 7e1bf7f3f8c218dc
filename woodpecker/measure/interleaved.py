"""Timing contenders in one process against each other: blocks of back-to-back runs, alternated.

Used by the planner (each call's contenders, whole-model checks) and by the executor's per-call profile, so that a
call's figure in a report and the planner's figure for the same choice come from one method."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def time_interleaved(runs: Mapping[str, Callable[[], None]], rounds: int, warmup: int = 3,
                     per_block: int = 4) -> dict[str, float]:
    """Median seconds of single runs; the contenders alternate by blocks of `per_block` timed runs, each block
    after one untimed run.

    Why blocks and not run by run: every runtime keeps its worker threads spinning for a while after a call
    (onnxruntime, TVM's thread pool, OpenMP), and on a small machine the next runtime's first run pays for it;
    alternating single runs charged that cost to every run (a 1.8 ms convolution measured 3.5 ms)."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(max(1, rounds // per_block)):
        for name, run in runs.items():
            run()
            for _ in range(per_block):
                t0 = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}
