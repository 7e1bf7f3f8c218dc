"""Searchers against a fake objective: validity, no repeats, determinism, failures survived, budget exact."""

from __future__ import annotations

import math

import pytest

from woodpecker.lowering.model import lower_graph
from woodpecker.passes.pipeline import optimize
from woodpecker.search import SearchContext, create
from woodpecker.space.space import point_key, space_for_task
from woodpecker.testing.fakes import synthetic_cost
from woodpecker.testing.models import tiny_cnn

SEARCHERS = ["random", "ga", "rl"]


@pytest.fixture(scope="module")
def conv_task():
    from woodpecker.frontend.onnx import import_onnx

    lowered = lower_graph(optimize(import_onnx(tiny_cnn(image_size=32, channels=32))))
    return next(t for t in lowered.tasks.values() if t.family == "conv2d_nchwc")


def run(kind: str, task, seed: int, trials: int, batch: int = 8, fail_all: bool = False, **options):
    space = space_for_task(task)
    searcher = create(kind, SearchContext(space, seed=seed, features={"family": task.family}, options=options))
    proposed = []
    while len(proposed) < trials:
        points = searcher.propose(min(batch, trials - len(proposed)))
        if not points:
            break
        proposed.extend(points)
        costs = [math.inf if fail_all else synthetic_cost(task.key, p) for p in points]
        searcher.observe(points, costs)
    return space, proposed


@pytest.mark.parametrize("kind", SEARCHERS)
def test_proposals_are_valid_and_never_repeat(kind, conv_task):
    space, proposed = run(kind, conv_task, seed=0, trials=48)
    assert len(proposed) == 48
    keys = [point_key(p) for p in proposed]
    assert len(set(keys)) == len(keys), "a point was proposed twice"
    for p in proposed:
        assert space.violations(p) == [], p
    assert proposed[0] == dict(space.default), "the default schedule is measured first"


@pytest.mark.parametrize("kind", SEARCHERS)
def test_same_seed_same_proposals(kind, conv_task):
    _, a = run(kind, conv_task, seed=7, trials=32)
    _, b = run(kind, conv_task, seed=7, trials=32)
    _, c = run(kind, conv_task, seed=8, trials=32)
    assert a == b
    assert a != c


@pytest.mark.parametrize("kind", SEARCHERS)
def test_all_failed_batches_are_survived(kind, conv_task):
    space, proposed = run(kind, conv_task, seed=1, trials=40, fail_all=True)
    assert len(proposed) == 40
    assert all(space.is_valid(p) for p in proposed)


@pytest.mark.parametrize("kind", SEARCHERS)
def test_visited_points_are_never_proposed(kind, conv_task):
    space = space_for_task(conv_task)
    _, earlier = run(kind, conv_task, seed=3, trials=24)
    visited = {point_key(p) for p in earlier}
    history = [(p, synthetic_cost(conv_task.key, p)) for p in earlier]
    searcher = create(kind, SearchContext(space, seed=3, visited=set(visited), history=history,
                                          features={"family": conv_task.family}))
    later = []
    for _ in range(4):
        pts = searcher.propose(8)
        later.extend(pts)
        searcher.observe(pts, [synthetic_cost(conv_task.key, p) for p in pts])
    assert later and not ({point_key(p) for p in later} & visited)


def test_small_space_is_exhausted_cleanly():
    from woodpecker.space.space import Knob, SearchSpace

    space = SearchSpace("injective", (Knob("vector", (1, 4, 8)), Knob("parallel", (0, 1))), (), {"vector": 8, "parallel": 1}, {})
    for kind in SEARCHERS:
        searcher = create(kind, SearchContext(space, seed=0))
        seen = []
        for _ in range(10):
            pts = searcher.propose(4)
            if not pts:
                break
            seen.extend(pts)
            searcher.observe(pts, [1.0] * len(pts))
        assert len({point_key(p) for p in seen}) == len(seen) == 6, kind


def test_ga_beats_random_on_average(conv_task):
    """The GA exploits structure: over several seeds its best is better than random search's at equal budget."""
    def best(kind, seed):
        _, pts = run(kind, conv_task, seed=seed, trials=96)
        return min(synthetic_cost(conv_task.key, p) for p in pts)

    ga = sum(math.log(best("ga", s)) for s in range(4))
    rnd = sum(math.log(best("random", s)) for s in range(4))
    assert ga < rnd


def test_cost_model_ranks_held_out_points(conv_task):
    import random

    from scipy.stats import kendalltau

    from woodpecker.search.cost_model import CostModel

    space = space_for_task(conv_task)
    rng = random.Random(0)
    points = [space.random_point(rng) for _ in range(160)]
    costs = [synthetic_cost(conv_task.key, p) for p in points]
    model = CostModel(min_points=16)
    model.update(space, points[:120], costs[:120])
    assert model.ready
    tau, _ = kendalltau(model.predict(space, points[120:]), costs[120:])
    assert tau > 0.5


def test_rl_policy_warm_starts_across_tasks(tmp_path, conv_task):
    """A policy trained on one task is saved without pickle and loaded for the next."""
    import numpy as np

    path = str(tmp_path / "policy.npz")
    run("rl", conv_task, seed=0, trials=80, n_steps=32, policy_path=path)
    with np.load(path, allow_pickle=False) as npz:
        saved = {k: npz[k].copy() for k in npz.files}
    space = space_for_task(conv_task)
    searcher = create("rl", SearchContext(space, seed=5, options={"policy_path": path}))
    loaded = {k: v.numpy() for k, v in searcher.model.policy.state_dict().items()}
    assert set(saved) == set(loaded)
    assert all(np.array_equal(saved[k], loaded[k]) for k in saved)


def test_rl_observation_has_a_slot_for_every_kernel_family():
    """Each family of the operator library is one-hot in the RL state (a missing one looks like no family)."""
    from woodpecker.dsl.library import default_library
    from woodpecker.search.rl import FAMILIES

    families = {str(k.attribute("family", name)) for name, k in default_library().templates.items()}
    assert families <= set(FAMILIES), sorted(families - set(FAMILIES))
