"""codegen.build falls back only when a schedule does not apply; a bug in a template fails the build loudly."""

from __future__ import annotations

import pytest

from woodpecker.codegen.build import build_tasks, schedule_with_fallback
from woodpecker.schedule.apply import default_knobs
from woodpecker.schedule.structure import analyze


def _task(lowered_zoo, family: str):
    return next(t for t in lowered_zoo if t.family == family)


def _inlinable(task) -> bool:
    st = analyze(task.kernel)
    return any(p not in st.reducing_producers and p != st.anchor for p in st.producers)


def test_template_bug_fails_the_build_instead_of_using_the_default_schedule(lowered_zoo, monkeypatch):
    from tvm import s_tir

    def broken(self, *args, **kwargs):
        raise TypeError("template bug")

    # vectorize sits in the "may not apply" try blocks of every CPU template: a TypeError there is a bug
    monkeypatch.setattr(s_tir.Schedule, "vectorize", broken)
    for family in ("injective", "row_reduce"):
        task = _task(lowered_zoo, family)
        with pytest.raises(TypeError, match="template bug"):
            schedule_with_fallback(task, default_knobs(task), "tuned")
        with pytest.raises(TypeError, match="template bug"):
            build_tasks({task.name: task}, {task.name: default_knobs(task)}, "llvm")


def test_template_bug_in_an_inline_step_propagates(lowered_zoo, monkeypatch):
    from tvm import s_tir

    def broken(self, *args, **kwargs):
        raise KeyError("template bug")

    monkeypatch.setattr(s_tir.Schedule, "compute_inline", broken)
    # softmax: a row reduction with a producer that is not itself a reduction (exp), which the template inlines
    task = next(t for t in lowered_zoo if t.family == "row_reduce" and _inlinable(t))
    with pytest.raises(KeyError, match="template bug"):
        schedule_with_fallback(task, {**default_knobs(task), "inline_producers": 1}, "tuned")


def test_a_step_that_does_not_apply_is_skipped(lowered_zoo, monkeypatch):
    from tvm import s_tir
    from tvm.s_tir.schedule import ScheduleError

    def refused(self, *args, **kwargs):
        raise ScheduleError("cannot vectorize here")

    monkeypatch.setattr(s_tir.Schedule, "vectorize", refused)
    task = _task(lowered_zoo, "row_reduce")  # its template vectorizes only where a loop allows it
    _, chosen = schedule_with_fallback(task, {**default_knobs(task), "vectorize": 1}, "tuned")
    assert chosen.origin == "tuned"


def test_illegal_knobs_fall_back_to_the_default_schedule(lowered_zoo, monkeypatch):
    from tvm.s_tir.schedule import ScheduleError

    from woodpecker.codegen import build

    real = build.schedule

    def refuses_the_tuned_knobs(task, knobs, target_class="cpu"):
        if knobs.get("illegal"):
            raise ScheduleError("illegal knobs")
        return real(task, knobs, target_class)

    monkeypatch.setattr(build, "schedule", refuses_the_tuned_knobs)
    task = _task(lowered_zoo, "injective")
    _, chosen = schedule_with_fallback(task, {**default_knobs(task), "illegal": 1}, "tuned")
    assert chosen.origin == "default"
