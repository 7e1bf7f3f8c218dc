"""Genetic algorithm over knob index vectors, with DEAP's operators, driven ask/tell by the tuning loop.

    population <- default point, best recorded points, random valid points
    propose(n):  offspring <- select(population, tournament k=3)
                 crossover (two-point, p=0.7), mutate each gene to a random value (p=0.2 per knob)
                 drop invalid and already-visited individuals; optionally rank by the cost model
    observe():   fitness = 1 / seconds (0 for a failed candidate)
                 population <- best `population_size` of everything evaluated (elitism)

DEAP's operators draw from Python's global `random`; the searcher swaps in its own generator state around them so
that the same seed gives the same proposals whatever else uses `random`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from deap import base, tools

from woodpecker.search.base import SearchContext, SearcherBase, register
from woodpecker.space.space import Point, point_key


class _FitnessMax(base.Fitness):
    weights = (1.0,)


class _Individual(list):
    fitness: _FitnessMax


@register("ga")
class GASearcher(SearcherBase):
    name = "ga"

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        opts = ctx.options
        self.population_size = int(opts.get("population", 24))
        self.cx_prob = float(opts.get("crossover", 0.7))
        self.mut_prob = float(opts.get("mutation", 0.2))
        self.oversample = int(opts.get("oversample", 8))  # candidates generated per proposal when a model ranks them
        self._state = random.Random(ctx.seed).getstate()
        self.toolbox = base.Toolbox()
        self.toolbox.register("mate", tools.cxTwoPoint)
        self.toolbox.register("select", tools.selTournament, tournsize=3)
        self.evaluated: list[tuple[float, tuple[int, ...]]] = []  # (fitness, indices)
        for p, c in ctx.history:
            self.evaluated.append((self._fitness(c), self.space.to_indices(p)))
        self.population: list[tuple[float, tuple[int, ...]]] = sorted(self.evaluated, reverse=True)[: self.population_size]

    @staticmethod
    def _fitness(cost: float) -> float:
        return 0.0 if cost == float("inf") or cost <= 0 else 1.0 / cost

    def _with_rng(self, fn):
        saved = random.getstate()
        random.setstate(self._state)
        try:
            return fn()
        finally:
            self._state = random.getstate()
            random.setstate(saved)

    def _mutate(self, ind: list[int]) -> None:
        for i, knob in enumerate(self.space.knobs):
            if random.random() < self.mut_prob and len(knob.values) > 1:
                ind[i] = random.randrange(len(knob.values))

    def _offspring(self, count: int) -> list[list[int]]:
        parents = []
        for fit, idx in self.population:
            ind = _Individual(idx)
            ind.fitness = _FitnessMax((fit,))
            parents.append(ind)
        chosen = self.toolbox.select(parents, count + count % 2)
        children = [list(c) for c in chosen]
        for a, b in zip(children[::2], children[1::2]):
            if len(a) > 1 and random.random() < self.cx_prob:
                self.toolbox.mate(a, b)
        for c in children:
            self._mutate(c)
        return children[:count]

    def propose(self, n: int) -> list[Point]:
        out = self.default_first()
        if self.exhausted_trivially:
            return out
        if len(self.population) < 2:
            return self.random_fill(out, n)
        want = n - len(out)
        ranked = self.ctx.cost_model is not None and self.ctx.cost_model.ready
        pool_size = want * (self.oversample if ranked else 1)
        candidates: list[Point] = []
        keys = set()
        for _ in range(20):
            if len(candidates) >= pool_size:
                break
            for child in self._with_rng(lambda: self._offspring(pool_size)):
                p = self.space.from_indices(child)
                k = point_key(p)
                if k in keys or k in self.visited or not self.space.is_valid(p):
                    continue
                keys.add(k)
                candidates.append(p)
        for p in self.rank(candidates, want):
            if self.take(p):
                out.append(p)
        return self.random_fill(out, n)

    def observe(self, points: Sequence[Point], costs: Sequence[float]) -> None:
        super().observe(points, costs)
        for p, c in zip(points, costs):
            self.evaluated.append((self._fitness(c), self.space.to_indices(p)))
        # elitism: the next parents are the best individuals ever evaluated (mu + lambda)
        self.population = sorted(self.evaluated, key=lambda e: e[0], reverse=True)[: self.population_size]
