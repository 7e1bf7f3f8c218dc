"""The Searcher protocol (ask/tell) and the registry of searchers.

The tuning loop owns the budget, the measurements and the database; a searcher only proposes points and learns
from their costs:

    searcher = create("ga", SearchContext(space, seed, visited, history))
    while budget:
        points = searcher.propose(n)       # never a point in `visited`; may return fewer (space exhausted)
        costs = measure(points)            # seconds, inf for a failed candidate
        searcher.observe(points, costs)
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from woodpecker.space.space import Point, SearchSpace, point_key


@dataclasses.dataclass
class SearchContext:
    space: SearchSpace
    seed: int = 0
    visited: set[str] = dataclasses.field(default_factory=set)  # point keys already measured or proposed
    history: list[tuple[Point, float]] = dataclasses.field(default_factory=list)  # (point, seconds) from the db
    features: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # task and device features (RL, cost model)
    cost_model: CostModelLike | None = None  # ranks candidates before measurement, when given
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Searcher(Protocol):
    """What the tuner needs of a searcher."""

    name: str
    # point keys already measured or proposed; the tuner adds the default schedules it measures for every task
    visited: set[str]

    def propose(self, n: int) -> list[Point]: ...

    def observe(self, points: Sequence[Point], costs: Sequence[float]) -> None: ...


class CostModelLike(Protocol):
    """What the tuner and the searchers need of a cost model (woodpecker.search.cost_model.CostModel)."""

    def update(self, space: SearchSpace, points: Sequence[Point], costs: Sequence[float]) -> None: ...

    def predict(self, space: SearchSpace, points: Sequence[Point]) -> list[float]: ...


class SearcherBase:
    """Shared bookkeeping: the visited set, the best point, random fallback proposals."""

    name = "base"

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.space = ctx.space
        self.rng = random.Random(ctx.seed)
        self.visited = ctx.visited
        self.best: tuple[float, Point] | None = None
        for p, c in ctx.history:
            self._note(p, c)

    def _note(self, point: Point, cost: float) -> None:
        if self.best is None or cost < self.best[0]:
            self.best = (cost, dict(point))

    def take(self, point: Point) -> bool:
        """Claim a point for measurement: False if it is invalid or was seen before."""
        key = point_key(point)
        if key in self.visited or not self.space.is_valid(point):
            return False
        self.visited.add(key)
        return True

    def default_first(self) -> list[Point]:
        """The default schedule, when nothing of this task was measured yet: every session's baseline."""
        default = dict(self.space.default)
        return [default] if not self.visited and self.take(default) else []

    @property
    def exhausted_trivially(self) -> bool:
        """A space without knobs has one point, the default: nothing to search once it is taken."""
        return not self.space.knobs

    def random_fill(self, out: list[Point], n: int, tries: int = 2000) -> list[Point]:
        for _ in range(tries):
            if len(out) >= n:
                break
            p = self.space.random_point(self.rng, tries=50)
            if p is not None and self.take(p):
                out.append(p)
        return out

    def rank(self, candidates: list[Point], n: int) -> list[Point]:
        """Keep the n candidates the cost model likes best (all of them, in order, without a model)."""
        model = self.ctx.cost_model
        if model is None or len(candidates) <= n or not model.ready:
            return candidates[:n]
        scores = model.predict(self.space, candidates)
        order = sorted(range(len(candidates)), key=lambda i: scores[i])
        # keep a few unranked picks so that the model's blind spots still get measured
        explore = max(1, n // 5)
        chosen = [candidates[i] for i in order[: n - explore]]
        rest = [candidates[i] for i in order[n - explore :]]
        self.rng.shuffle(rest)
        return chosen + rest[:explore]

    def observe(self, points: Sequence[Point], costs: Sequence[float]) -> None:
        for p, c in zip(points, costs):
            self._note(p, c)


SEARCHERS: dict[str, Callable[[SearchContext], Searcher]] = {}


def register(name: str) -> Callable:
    def wrap(cls):
        SEARCHERS[name] = cls
        return cls

    return wrap


def create(kind: str, ctx: SearchContext) -> Searcher:
    from woodpecker.errors import WoodpeckerError

    _load_builtin()
    try:
        cls = SEARCHERS[kind]
    except KeyError:
        raise WoodpeckerError(f"unknown searcher {kind!r}; choose one of {', '.join(sorted(SEARCHERS))}") from None
    return cls(ctx)


def _load_builtin() -> None:
    # Imported lazily: the GA needs DEAP, the RL searcher stable-baselines3 and torch.
    if "random" not in SEARCHERS:
        from woodpecker.search import random_search  # noqa: F401
    if "ga" not in SEARCHERS:
        from woodpecker.search import ga  # noqa: F401
    if "rl" not in SEARCHERS:
        from woodpecker.search import rl  # noqa: F401


def searcher_names() -> list[str]:
    return ["random", "ga", "rl"]
