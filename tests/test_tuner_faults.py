"""Fault isolation in a real tuning session: candidates that segfault, hang, run out of memory, abort, exit, raise,
or compute wrong numbers each become a failed record with a readable error, and the session spends its whole
budget measuring the others.

The session is woodpecker.tuner.tune with the real Measurer (real builds, real worker processes, real timing) on a
tiny model. Nothing in production code knows about the faults: the test hands tune() a Measurer whose worker
pools are wrapped so that chosen calls run a misbehaving job from woodpecker.testing.faults instead of the
build or run job, in the same WorkerPool, and whose reference output for one kernel disagrees with what the
kernel computes ("wrong numbers").
"""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.hw.host import target_dict
from woodpecker.hw.identity import toolchain
from woodpecker.measure.measurer import MeasureOptions, Measurer
from woodpecker.records.db import RecordsDatabase
from woodpecker.testing import faults
from woodpecker.testing.models import tiny_cnn
from woodpecker.tuner import tune

TRIALS = 24
RUN_FAULTS = {2: faults.segfault, 4: faults.hang, 6: faults.out_of_memory, 8: faults.aborts, 10: faults.exits}
BUILD_FAULTS = {7: faults.raises, 9: faults.segfault}  # k-th candidate built: its build misbehaves instead
EXPECTED_ERRORS = {
    faults.segfault: "worker crashed (SIGSEGV)",
    faults.hang: "timeout after",
    faults.out_of_memory: "MemoryError",
    faults.aborts: "worker crashed (SIGABRT)",
    faults.exits: "worker exited with status 3",
    faults.raises: "ValueError: bad candidate",
}


class RoutingPool:
    """A WorkerPool stand-in that runs the k-th call (counted over the session) as faults[k] instead of the job
    asked for, in the wrapped, real pool; every other call goes through unchanged."""

    def __init__(self, pool, faults_by_call):
        self.pool = pool
        self.faults = faults_by_call
        self.calls = 0
        self.injected: list = []

    def map(self, fn, arg_list, timeout_s):
        results = []
        for args in arg_list:  # one at a time, so that each call can get its own function
            fault = self.faults.get(self.calls)
            self.calls += 1
            if fault is not None:
                self.injected.append(fault)
            results.extend(self.pool.map(fault or fn, [(21,) if fault else args], timeout_s))
        return results

    def close(self):
        self.pool.close()


class FaultyMeasurer(Measurer):
    """The real Measurer, with routed pools and one kernel whose reference is off by one."""

    def __init__(self, wrong_task_family: str, **kwargs):
        super().__init__(target_dict(), **kwargs)
        self.builders = RoutingPool(self.builders, BUILD_FAULTS)
        self.runner = RoutingPool(self.runner, RUN_FAULTS)
        self.wrong_family = wrong_task_family
        self.wrong_tasks: set[str] = set()

    def set_reference(self, task, inputs, expected):
        if task.family == self.wrong_family and not self.wrong_tasks:
            self.wrong_tasks.add(task.key)
            expected = np.asarray(expected) + 1.0  # the kernel computes the right thing; the reference does not
        super().set_reference(task, inputs, expected)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    db = tmp_path_factory.mktemp("faults") / "records.db"
    measurer = FaultyMeasurer(
        "conv2d_nchwc", build_workers=2, toolchain=toolchain(),
        options=MeasureOptions(repeat=2, min_repeat_ms=2, build_timeout_s=120.0, run_timeout_s=4.0),
    )
    report = tune(tiny_cnn(), trials=TRIALS, db=str(db), batch_size=4, early_stop=0, searcher="random",
                  measurer=measurer)
    with RecordsDatabase(db) as database:
        records = database.records()
    return report, records, measurer


def test_every_fault_was_injected(session):
    _, _, measurer = session
    assert set(measurer.runner.injected) == set(RUN_FAULTS.values())
    assert set(measurer.builders.injected) == set(BUILD_FAULTS.values())
    assert measurer.wrong_tasks, "no kernel of the chosen family to give a wrong reference"


def test_the_session_spends_its_whole_budget(session):
    report, records, _ = session
    assert report.stopped == "budget" and report.trials == TRIALS
    assert len(records) == TRIALS, "every candidate, failed or not, is one record"


def test_each_fault_is_a_failed_record_with_a_readable_error(session):
    _, records, _ = session
    failed = [r for r in records if not r.ok]
    errors = [r.error for r in failed]
    for fault, words in EXPECTED_ERRORS.items():
        assert any(words in e for e in errors), f"{fault.__name__}: no failed record saying {words!r} in {errors}"
    for r in failed:
        assert r.error and "\n" not in r.error and "Traceback" not in r.error
        assert r.run_secs == () and not r.ok
        assert r.error.startswith(("run failed: ", "build failed: ", "wrong result")), r.error


def test_wrong_numbers_are_rejected_before_timing(session):
    _, records, measurer = session
    (wrong,) = measurer.wrong_tasks
    mine = [r for r in records if r.workload_key == wrong]
    assert mine, "the kernel with the wrong reference was never measured"
    assert all(not r.ok for r in mine), "a candidate that disagrees with the reference was timed"
    # the kernel of the wrong reference is a convolution: the one the session measures most, so that some of its
    # candidates run without an injected fault
    assert any("wrong result: max relative error" in r.error for r in mine), [r.error for r in mine]


def test_good_candidates_are_measured_after_every_fault(session):
    """The pools replaced their dead or hung workers: candidates measured after the last fault still succeed."""
    report, records, measurer = session
    ok = [r for r in records if r.ok]
    assert len(ok) >= TRIALS // 3
    assert all(r.latency_us > 0 for r in ok)
    last_fault = max(i for i, r in enumerate(records) if not r.ok and r.workload_key not in measurer.wrong_tasks)
    assert any(r.ok for r in records[last_fault + 1 :]), "nothing succeeded after the last injected fault"
    for task in report.tasks:
        if task.workload in measurer.wrong_tasks:
            assert task.best_us is None, "a kernel whose every candidate failed has no best time"
        elif task.best_us is not None:
            assert task.best_us == min(r.latency_us for r in ok if r.workload_key == task.workload)
