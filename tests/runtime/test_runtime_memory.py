"""Static memory planner: live values never overlap, views share storage, dead storage is reused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from woodpecker.runtime.memory import ALIGN, plan_buffers, plan_memory


def _root_lifetimes(plan, nbytes, defs, last, views):
    """Checks that every value has a root and views resolve to their source's root; returns each storage root's
    lifetime, the union of its values' lifetimes."""
    root = plan.root
    assert set(nbytes) <= set(root)
    for src, dst in views:
        assert root[dst] == root[src]
    start, end = {}, {}
    for v in nbytes:
        r = root[v]
        start[r] = min(start.get(r, defs[v]), defs[v])
        end[r] = max(end.get(r, last[v]), last[v])
    return root, start, end


def _check_plan(plan, nbytes, defs, last, views):
    root, start, end = _root_lifetimes(plan, nbytes, defs, last, views)
    for v, n in nbytes.items():
        p = plan.placements[root[v]]
        assert p.offset % ALIGN == 0 and p.nbytes % ALIGN == 0
        assert n <= p.nbytes and p.offset + p.nbytes <= plan.arena_bytes
    roots = sorted(plan.placements)
    for i, a in enumerate(roots):
        for b in roots[i + 1 :]:
            live_together = not (end[a] < start[b] or end[b] < start[a])
            pa, pb = plan.placements[a], plan.placements[b]
            apart = pa.offset + pa.nbytes <= pb.offset or pb.offset + pb.nbytes <= pa.offset
            assert apart or not live_together, (a, b)


def test_chain_reuses_storage():
    # x -> v1 -> v2 -> ... -> v7, each step reading the previous value: only two need to be live at once
    n = 8
    names = [f"v{i}" for i in range(n)]
    nbytes = {v: 4096 for v in names}
    defs = {v: i - 1 for i, v in enumerate(names)}
    last = {v: i for i, v in enumerate(names)}
    last[names[-1]] = n
    plan = plan_memory(nbytes, defs, last, [])
    _check_plan(plan, nbytes, defs, last, [])
    assert plan.arena_bytes == 2 * 4096 < sum(nbytes.values())


def test_a_kernel_never_writes_over_its_own_input():
    # b is defined by the step that last reads a: inclusive lifetimes keep them apart
    nbytes = {"a": 100, "b": 100}
    plan = plan_memory(nbytes, {"a": -1, "b": 0}, {"a": 0, "b": 1}, [])
    pa, pb = plan.placements["a"], plan.placements["b"]
    assert pa.offset != pb.offset
    assert plan.arena_bytes == 2 * 128


def test_views_share_storage_and_extend_its_lifetime():
    nbytes = {"a": 256, "a_view": 256, "a_view2": 256, "b": 256, "c": 256}
    defs = {"a": 0, "a_view": 1, "a_view2": 2, "b": 1, "c": 3}
    last = {"a": 0, "a_view": 1, "a_view2": 3, "b": 2, "c": 4}
    views = [("a", "a_view"), ("a_view", "a_view2")]
    plan = plan_memory(nbytes, defs, last, views)
    _check_plan(plan, nbytes, defs, last, views)
    assert plan.root["a_view2"] == plan.root["a_view"] == "a"
    assert set(plan.placements) == {"a", "b", "c"}
    # a (through its view) is live until step 3, so b (steps 1..2) cannot reuse it; c (3..4) cannot either
    offsets = {plan.placements[v].offset for v in ("a", "b")}
    assert len(offsets) == 2


def test_slices_live_inside_their_whole_from_the_first_part_on():
    # p1 (step 0) and p2 (step 2) are an in-place concat's inputs, read together as w by step 3;
    # t (steps 1..2) is live while the parts are being written and must not overlap w's storage
    nbytes = {"p1": 256, "p2": 128, "w": 384, "t": 384}
    defs = {"p1": 0, "p2": 2, "w": 2, "t": 1}
    last = {"p1": 0, "p2": 2, "w": 3, "t": 2}
    plan = plan_memory(nbytes, defs, last, [], [("p1", "w", 0), ("p2", "w", 256)])
    assert plan.root["p1"] == plan.root["p2"] == "w" and set(plan.placements) == {"w", "t"}
    assert plan.offsets == {"p1": 0, "p2": 256}
    w, t = plan.placements["w"], plan.placements["t"]
    assert w.nbytes == 384 and (t.offset >= w.offset + w.nbytes or w.offset >= t.offset + t.nbytes)
    with pytest.raises(ValueError, match="in-place concat"):
        plan_buffers(nbytes, defs, last, [], [("p1", "w", 0)])


def test_empty_and_zero_sized_values():
    assert plan_memory({}, {}, {}, []).arena_bytes == 0
    plan = plan_memory({"e": 0}, {"e": 0}, {"e": 1}, [])
    assert plan.placements["e"].nbytes == ALIGN


@st.composite
def _problems(draw):
    n = draw(st.integers(1, 14))
    nbytes, defs, last = {}, {}, {}
    for i in range(n):
        v = f"v{i}"
        nbytes[v] = draw(st.integers(0, 5000))
        defs[v] = draw(st.integers(-1, 10))
        last[v] = defs[v] + draw(st.integers(0, 6))
    views = []
    for i in range(1, n):
        if draw(st.booleans()) and draw(st.booleans()):
            views.append((f"v{draw(st.integers(0, i - 1))}", f"v{i}"))
    return nbytes, defs, last, views


@settings(max_examples=200, deadline=None)
@given(_problems())
def test_random_plans_never_overlap_live_values(problem):
    nbytes, defs, last, views = problem
    plan = plan_memory(nbytes, defs, last, views)
    _check_plan(plan, nbytes, defs, last, views)
    assert plan.arena_bytes <= sum(-(-max(n, 1) // ALIGN) * ALIGN for n in nbytes.values())


def _check_buffers(plan, nbytes, defs, last, views):
    root, start, end = _root_lifetimes(plan, nbytes, defs, last, views)
    for v, n in nbytes.items():
        assert n <= plan.buffer_bytes[plan.buffer_of[root[v]]]
    roots = sorted(plan.buffer_of)
    for i, a in enumerate(roots):
        for b in roots[i + 1 :]:
            if plan.buffer_of[a] == plan.buffer_of[b]:
                assert end[a] < start[b] or end[b] < start[a], (a, b)  # one buffer, never two live values


def test_buffers_chain_reuses_dead_buffers():
    # a -> b -> c -> d, each read only by the next: two buffers alternate
    nbytes = {"a": 100, "b": 100, "c": 100, "d": 100}
    defs = {"a": -1, "b": 0, "c": 1, "d": 2}
    last = {"a": 0, "b": 1, "c": 2, "d": 3}
    plan = plan_buffers(nbytes, defs, last, [])
    _check_buffers(plan, nbytes, defs, last, [])
    assert len(plan.buffer_bytes) == 2 and plan.buffer_of["a"] == plan.buffer_of["c"]


@settings(max_examples=200, deadline=None)
@given(_problems())
def test_random_buffer_plans_never_share_a_buffer_between_live_values(problem):
    nbytes, defs, last, views = problem
    plan = plan_buffers(nbytes, defs, last, views)
    _check_buffers(plan, nbytes, defs, last, views)
    assert plan.total_bytes <= sum(-(-max(n, 1) // ALIGN) * ALIGN for n in nbytes.values())
