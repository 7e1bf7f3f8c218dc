"""What a measurement gives back (MeasureResult) and how it is made (MeasureOptions): shared by every backend."""

from __future__ import annotations

import dataclasses

import numpy as np

from woodpecker import config
from woodpecker.measure.correctness import RTOL


@dataclasses.dataclass(frozen=True)
class MeasureResult:
    run_secs: tuple[float, ...]  # every timed repeat, seconds; empty on error
    error: str | None
    build_secs: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.run_secs)

    @property
    def cost(self) -> float:
        """Median seconds (inf when the candidate failed): what searchers minimize."""
        return float(np.median(self.run_secs)) if self.ok else float("inf")


@dataclasses.dataclass(frozen=True)
class MeasureOptions:
    repeat: int = 5  # timed repeats per candidate
    min_repeat_ms: int = 20  # each repeat runs the kernel enough times to last this long
    build_timeout_s: float = 120.0
    run_timeout_s: float = 30.0
    rtol: float = RTOL  # accepted max |out - ref| / max |ref| (woodpecker.measure.correctness)
    # single runs after a cache flush instead of hot loops (woodpecker.measure.jobs.run_job; WOODPECKER_COLD_CACHE)
    cold_cache: bool = dataclasses.field(default_factory=lambda: config.get().cold_cache)
