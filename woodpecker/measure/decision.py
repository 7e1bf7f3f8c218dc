"""Whole-model decisions on a noisy machine: per-process latency samples -> a summary and a choice with its reason.

On a shared VM a process lands in a fast or a slow mode that lasts its whole life (the same artifact: per-process
medians of 4.0 and 8.1 ms), so one process is one sample, however many runs it makes. A contender is summarised by
the median of its per-process medians and their quartiles (the spread); the incumbent (woodpecker's own build)
keeps its place unless a challenger is faster beyond the spread: its median below the incumbent's by more than the
tie margin AND its upper quartile below the incumbent's lower quartile. One lucky process cannot do that.

The planner, `woodpecker bench` and benchmarks/e2e.py all summarise and decide through this module, so a report
and a plan never disagree about the same figures.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence

TIE = 0.03  # a challenger must be this much faster (relative) as well as beyond the spread
PREFERENCE = ("woodpecker", "planned", "onnxruntime")  # order among equals: own kernels, then the mix, then vendor


@dataclasses.dataclass(frozen=True)
class ProcessSamples:
    """One contender's latency: the median of each fresh process's timed runs, in the order they were taken."""

    name: str
    process_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.process_ms)

    @property
    def low_ms(self) -> float:
        """Lower quartile of the per-process medians (the value itself when there is one process)."""
        return _quartiles(self.process_ms)[0]

    @property
    def high_ms(self) -> float:
        """Upper quartile of the per-process medians."""
        return _quartiles(self.process_ms)[1]

    def describe(self) -> str:
        """'39.0 ms (38.1-40.2)': median of per-process medians (their interquartile range)."""
        return f"{self.median_ms:.{_digits(self.median_ms)}f} ms ({self.low_ms:.{_digits(self.low_ms)}f}-" \
               f"{self.high_ms:.{_digits(self.high_ms)}f})"

    def to_json(self) -> dict:
        return {"median_ms": self.median_ms, "p25_ms": self.low_ms, "p75_ms": self.high_ms,
                "process_ms": list(self.process_ms)}


@dataclasses.dataclass(frozen=True)
class Decision:
    chosen: str
    within_noise: bool  # True when some other contender's figures overlap the chosen one's beyond the tie margin
    reason: str  # one clause, for the summary and the artifact


def _quartiles(xs: Sequence[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(sorted(xs), n=4, method="inclusive")
    return q[0], q[2]


def _digits(ms: float) -> int:
    return 2 if ms < 10 else 1


def beats(challenger: ProcessSamples, incumbent: ProcessSamples, tie: float = TIE) -> bool:
    """Faster beyond the noise: a lower median by more than `tie`, and the quartile ranges do not overlap."""
    return challenger.median_ms < incumbent.median_ms * (1 - tie) and challenger.high_ms < incumbent.low_ms


def choose(samples: Mapping[str, ProcessSamples], incumbent: str = "woodpecker", tie: float = TIE) -> Decision:
    """The contender to ship. The incumbent stays unless another beats it (see `beats`); among those that do, the
    one with the lowest median. Without the incumbent, the lowest median (preference order on ties)."""
    if not samples:
        raise ValueError("no contender was timed")
    order = {n: i for i, n in enumerate(PREFERENCE)}
    ranked = sorted(samples.values(), key=lambda s: (s.median_ms, order.get(s.name, len(order))))
    if incumbent not in samples:
        best = ranked[0]
        return Decision(best.name, False, f"{incumbent} could not be timed")
    inc = samples[incumbent]
    winners = [s for s in ranked if s.name != incumbent and beats(s, inc, tie)]
    if winners:
        w = winners[0]
        return Decision(w.name, False, f"{w.name} is {inc.median_ms / w.median_ms:.2f}x faster than {incumbent}, "
                                       f"beyond the spread")
    faster = [s for s in ranked if s.name != incumbent and s.median_ms < inc.median_ms]
    if faster:
        f = faster[0]
        return Decision(incumbent, True, f"{f.name} is {inc.median_ms / f.median_ms:.2f}x faster by the median, "
                                         f"within the spread: {incumbent} kept")
    return Decision(incumbent, False, f"{incumbent} is the fastest")


def ratio_line(shipped: ProcessSamples, baseline: ProcessSamples | None, label: str,
               baseline_label: str = "") -> str:
    """'shipping woodpecker's kernels: 39.0 ms (38.1-40.2) vs onnxruntime 40.9 ms (39.5-44.0): 1.05x, within noise'
    (the ratio is the baseline's time over the shipped one's: above 1, what ships is faster)."""
    line = f"shipping {label}: {shipped.describe()}"
    if baseline is None or baseline.name == shipped.name:
        return line
    ratio = baseline.median_ms / shipped.median_ms
    noise = "beyond the spread" if (beats(shipped, baseline) or beats(baseline, shipped)) else "within noise"
    return f"{line} vs {baseline_label or baseline.name} {baseline.describe()}: {ratio:.2f}x, {noise}"
