"""The tuning loop with a fake measurer: budgets, resumption, early stopping, failures, records, compile --db."""

from __future__ import annotations

import pytest

from woodpecker.errors import BudgetError
from woodpecker.records.db import RecordsDatabase
from woodpecker.space.space import point_key
from woodpecker.testing.fakes import FakeMeasurer
from woodpecker.testing.models import tiny_cnn
from woodpecker.tuner import VERIFY_PAIRS, parse_duration, tune


@pytest.mark.parametrize("searcher", ["random", "ga", "rl"])
def test_trial_budget_is_honoured_exactly(tmp_db, searcher):
    fake = FakeMeasurer()
    report = tune(tiny_cnn(), searcher=searcher, trials=37, db=str(tmp_db), batch_size=8, measurer=fake,
                  early_stop=0)
    # after the trials, each task's best re-timed beside its default (VERIFY_PAIRS pairs): not trials, not records
    verified = sum(t.verified is not None for t in report.tasks)
    assert report.trials == 37 == len(fake.measured) - 2 * VERIFY_PAIRS * verified
    assert report.stopped == "budget"
    with RecordsDatabase(tmp_db) as db:
        assert db.count() == 37


def test_defaults_first_then_search_and_best_improves(tmp_db):
    fake = FakeMeasurer()
    report = tune(tiny_cnn(), trials=60, db=str(tmp_db), measurer=fake, early_stop=0)
    n_tasks = len(report.tasks)
    first = fake.measured[:n_tasks]
    assert len({k for k, _ in first}) == n_tasks, "every task's default schedule is measured first"
    assert all(t.default_us is not None for t in report.tasks)
    tuned = [t for t in report.tasks if t.trials > 1]
    assert tuned and all(t.best_us <= t.default_us for t in tuned)
    assert report.best_ms <= report.default_ms


def test_rerun_resumes_without_measuring_anything_twice(tmp_db):
    first = FakeMeasurer()
    tune(tiny_cnn(), trials=30, db=str(tmp_db), measurer=first, early_stop=0)
    second = FakeMeasurer()
    report = tune(tiny_cnn(), trials=30, db=str(tmp_db), measurer=second, early_stop=0)
    a = {(k, point_key(p)) for k, p in first.measured}
    b = {(k, point_key(p)) for k, p in second.measured[:30]}  # then the re-timing of bests beside defaults
    assert len(b) == 30 and not (a & b)
    assert sum(t.records for t in report.tasks) == 60


def test_failures_are_records_and_never_win(tmp_db):
    fake = FakeMeasurer(fails=lambda key, p: "run failed: worker crashed (SIGSEGV)" if p.get("unroll") == 0 else None)
    report = tune(tiny_cnn(), trials=50, db=str(tmp_db), measurer=fake, early_stop=0)
    with RecordsDatabase(tmp_db) as db:
        recs = db.records()
        failed = [r for r in recs if not r.ok]
        assert failed and all("SIGSEGV" in r.error for r in failed)
    assert sum(t.failed for t in report.tasks) == len(failed)


def test_early_stop_ends_a_session_before_its_budget(tmp_db):
    flat = FakeMeasurer(cost=lambda key, p: 1e-3)  # nothing ever improves
    report = tune(tiny_cnn(), trials=500, db=str(tmp_db), measurer=flat, early_stop=8)
    assert report.stopped == "converged" and report.trials < 500
    assert all(t.stopped in ("converged", "exhausted") for t in report.tasks)


def test_compile_applies_the_best_records(tmp_db):
    import woodpecker

    tune(tiny_cnn(), trials=40, db=str(tmp_db), measurer=FakeMeasurer(), early_stop=0)
    cm = woodpecker.compile(tiny_cnn(), db=str(tmp_db))
    origins = {k.origin for k in cm.kernels}
    assert "tuned" in origins
    with RecordsDatabase(tmp_db) as db:
        for k in cm.kernels:
            if k.origin == "tuned":
                assert db.stats()  # the applied knobs are the fastest record of that workload
                best = min((r for r in db.records(k.key) if r.ok), key=lambda r: r.latency_us)
                assert dict(best.knobs) == dict(k.knobs)


@pytest.mark.parametrize("tuned_cold", [True, False], ids=["tuned-cold", "tuned-hot"])
def test_records_are_keyed_by_the_measurer_options_and_compile_falls_back_to_the_other_mode(tmp_db, tuned_cold):
    import woodpecker
    from woodpecker import config
    from woodpecker.measure.measurer import MeasureOptions

    with config.override(cold_cache=not tuned_cold):  # options passed in code decide, not the configuration
        tune(tiny_cnn(), trials=40, db=str(tmp_db), measurer=FakeMeasurer(), early_stop=0,
             measure_options=MeasureOptions(cold_cache=tuned_cold))
        with RecordsDatabase(tmp_db) as db:
            assert {r.toolchain.get("timing") for r in db.records()} == {"cold-cache" if tuned_cold else None}
        cm = woodpecker.compile(tiny_cnn(), db=str(tmp_db))  # no records timed the configured way: the others serve
    assert "tuned" in {k.origin for k in cm.kernels}


@pytest.mark.parametrize("cold", [True, False])
def test_a_measurer_passed_in_keys_records_by_its_own_timing(tmp_db, cold):
    from woodpecker import config
    from woodpecker.measure.measurer import MeasureOptions

    with config.override(cold_cache=not cold):
        tune(tiny_cnn(), trials=12, db=str(tmp_db), measurer=FakeMeasurer(options=MeasureOptions(cold_cache=cold)),
             early_stop=0)
    with RecordsDatabase(tmp_db) as db:
        assert {r.toolchain.get("timing") for r in db.records()} == {"cold-cache" if cold else None}


def test_compile_skips_a_timing_mode_that_holds_only_default_schedules(tmp_db):
    """A database tuned with hot loops, then a short cold-cache session that measured only the defaults: the hot
    tuned schedules still serve (the cold mode has nothing tuned)."""
    import woodpecker
    from woodpecker import config
    from woodpecker.measure.measurer import MeasureOptions

    hot = tune(tiny_cnn(), trials=40, db=str(tmp_db), measurer=FakeMeasurer(options=MeasureOptions(cold_cache=False)),
               early_stop=0)
    n_tasks = len(hot.tasks)
    tune(tiny_cnn(), trials=n_tasks, db=str(tmp_db), measurer=FakeMeasurer(options=MeasureOptions(cold_cache=True)),
         early_stop=0)  # the defaults only
    with RecordsDatabase(tmp_db) as db:
        cold = [r for r in db.records() if r.toolchain.get("timing") == "cold-cache"]
        assert len(cold) == n_tasks
    with config.override(cold_cache=True):
        cm = woodpecker.compile(tiny_cnn(), db=str(tmp_db))
    tuned = {k.key: dict(k.knobs) for k in cm.kernels if k.origin == "tuned"}
    assert tuned
    with RecordsDatabase(tmp_db) as db:
        for key, knobs in tuned.items():
            best_hot = min((r for r in db.records(key) if r.ok and "timing" not in r.toolchain), key=lambda r: r.latency_us)
            assert dict(best_hot.knobs) == knobs


@pytest.mark.parametrize("bad", [dict(trials=0), dict(trials=-3), dict(budget_s=0.0), dict(budget_s=float("nan")), {}])
def test_nonsense_budgets_are_refused(bad, tmp_db):
    with pytest.raises(BudgetError):
        tune(tiny_cnn(), db=str(tmp_db), measurer=FakeMeasurer(), **bad)


def test_parse_duration():
    assert parse_duration("90s") == 90 and parse_duration("15m") == 900 and parse_duration("8h") == 28800
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    for bad in ("soon", "h", "-", "3x"):
        with pytest.raises(BudgetError):
            parse_duration(bad)


def test_report_and_progress_say_how_many_trials_were_defaults(tmp_db):
    """`--trials 60` on a model of 28 kernels searched 32: the default schedules count, and both the progress and
    the report say how many of the trials they took."""
    seen = []
    report = tune(tiny_cnn(), trials=20, db=str(tmp_db), measurer=FakeMeasurer(), early_stop=0, progress=seen.append)
    n_tasks = len(report.tasks)
    assert report.trials == 20 and report.defaults == n_tasks and report.searched == 20 - n_tasks
    assert seen[-1].defaults == n_tasks and seen[-1].searched == seen[-1].trials - n_tasks
    again = tune(tiny_cnn(), trials=10, db=str(tmp_db), measurer=FakeMeasurer(), early_stop=0)
    assert again.defaults == 0 and again.searched == 10  # resumed: the defaults are on record


class _DriftingMeasurer(FakeMeasurer):
    """A runner that is 2x slower for its first `slow` measurements (a VM's slow phase at a session's start), then
    times every point at `cost` (FakeMeasurer's synthetic cost by default)."""

    def __init__(self, slow: int, **kwargs):
        super().__init__(**kwargs)
        self.slow = slow

    def measure_many(self, items):
        out = super().measure_many(items)
        n = len(self.measured)
        return [type(r)(tuple(x * 2 for x in r.run_secs), r.error) if n - len(out) + i < self.slow else r
                for i, r in enumerate(out)]


def test_a_best_that_only_beat_a_slow_default_is_not_applied(tmp_db):
    """Every schedule costs the same, but the defaults were timed in a slow phase: the search "finds" 2x for every
    task; re-timed beside their defaults at the end the bests gain nothing (verdict 1.0), and compile keeps the
    defaults. Records keep every figure."""
    import woodpecker
    from woodpecker.records.select import VERIFIED_MIN_SPEEDUP

    fake = _DriftingMeasurer(slow=6, cost=lambda key, p: 1e-3)
    report = tune(tiny_cnn(), trials=40, db=str(tmp_db), measurer=fake, early_stop=0)
    searched = [t for t in report.tasks if t.speedup and t.speedup > 1.5]
    assert searched and all(t.verified == pytest.approx(1.0) for t in searched)
    assert all(t.verified < VERIFIED_MIN_SPEEDUP for t in report.tasks if t.verified is not None)
    cm = woodpecker.compile(tiny_cnn(), db=str(tmp_db))
    assert {k.origin for k in cm.kernels} == {"default"}
    with RecordsDatabase(tmp_db) as db:
        assert db.count() == 40


def test_a_best_that_holds_side_by_side_is_applied(tmp_db):
    """The synthetic cost has a real optimum per task: the bests re-timed beside their defaults keep their gain,
    and compile applies them."""
    import woodpecker

    report = tune(tiny_cnn(), trials=40, db=str(tmp_db), measurer=_DriftingMeasurer(slow=0), early_stop=0)
    gained = [t for t in report.tasks if t.verified is not None and t.verified > 1.02]
    assert gained and all(t.verified == pytest.approx(t.speedup, rel=0.05) for t in gained)
    cm = woodpecker.compile(tiny_cnn(), db=str(tmp_db))
    tuned = {k.key for k in cm.kernels if k.origin == "tuned"}
    assert {t.workload for t in gained} <= tuned


def test_a_best_that_is_not_a_point_of_the_space_now_is_not_applied(tmp_db):
    """A record without a knob its task's space has now (a Winograd record from before `fuse_rows`), or with a value
    the space no longer offers (an outer order now left to the default), was chosen in another space against
    another default: compile leaves its task on the current default until it is tuned again."""
    import json

    import woodpecker
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.targets import resolve

    tune(tiny_cnn(), trials=40, db=str(tmp_db), measurer=_DriftingMeasurer(slow=0), early_stop=0)
    cm = woodpecker.compile(tiny_cnn(), db=str(tmp_db))
    assert any(k.origin == "tuned" for k in cm.kernels)
    host = resolve("host")
    lowered = lower_graph(optimize(import_onnx(tiny_cnn()), host.pass_options()))
    first_knob = {key: host.space(task).knobs[0].name for key, task in lowered.tasks.items()}
    with RecordsDatabase(tmp_db) as db:  # every record as an older session wrote it: without its space's first knob
        for rowid, key, knobs in db.conn.execute("SELECT id, workload_key, knobs FROM records").fetchall():
            older = json.loads(knobs)
            older.pop(first_knob[key], None)
            db.conn.execute("UPDATE records SET knobs=? WHERE id=?", (json.dumps(older), rowid))
    assert {k.origin for k in woodpecker.compile(tiny_cnn(), db=str(tmp_db)).kernels} == {"default"}
    with RecordsDatabase(tmp_db) as db:  # a value the space no longer offers (a knob now left to its default)
        for rowid, key, knobs in db.conn.execute("SELECT id, workload_key, knobs FROM records").fetchall():
            db.conn.execute("UPDATE records SET knobs=? WHERE id=?",
                            (json.dumps({**json.loads(knobs), first_knob[key]: "no longer offered"}), rowid))
    assert {k.origin for k in woodpecker.compile(tiny_cnn(), db=str(tmp_db)).kernels} == {"default"}
