"""FakeMeasurer: a Measurer stand-in whose costs come from a deterministic synthetic landscape (no builds).

Searchers and the tuning loop are tested against it: budgets, resumption, failures and determinism do not need
real kernels. The landscape has one optimum per task and smooth structure around it, so that a searcher that
learns does better than chance.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from woodpecker.measure.measurer import MeasureResult


def synthetic_cost(task_key: str, point: Mapping[str, Any]) -> float:
    """Seconds: 1 ms times a penalty per knob that grows with the distance to a task-specific optimum."""
    cost = 1e-3
    for name in sorted(point):
        value = point[name]
        h = int(hashlib.sha256(f"{task_key}:{name}".encode()).hexdigest()[:8], 16)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            target = (h % 4) + 1
            cost *= 1.0 + 0.3 * abs(math.log2(max(float(value), 0.5)) - math.log2(target))
        else:
            cost *= 1.0 if (hash_str(str(value)) + h) % 3 == 0 else 1.4
    return cost


def hash_str(s: str) -> int:
    return int(hashlib.sha256(s.encode()).hexdigest()[:8], 16)


class FakeMeasurer:
    def __init__(self, cost: Callable[[str, Mapping[str, Any]], float] = synthetic_cost,
                 fails: Callable[[str, Mapping[str, Any]], str | None] | None = None, options: Any = None) -> None:
        self.cost = cost
        self.fails = fails
        self.options = options  # MeasureOptions a real measurer would time with (None: the tuner's)
        self.measured: list[tuple[str, dict]] = []  # every (task key, point) measured, in order
        self.closed = False

    def set_reference(self, task, inputs, expected) -> None:
        pass

    def measure(self, task, points: Sequence[Mapping[str, Any]]) -> list[MeasureResult]:
        return self.measure_many([(task, p) for p in points])

    def measure_many(self, items) -> list[MeasureResult]:
        out = []
        for task, p in items:
            self.measured.append((task.key, dict(p)))
            error = self.fails(task.key, p) if self.fails else None
            if error:
                out.append(MeasureResult((), error))
            else:
                c = self.cost(task.key, p)
                out.append(MeasureResult((c, c * 1.01, c * 0.99), None))
        return out

    def close(self) -> None:
        self.closed = True
