"""WorkerPool isolation: a crashing, hanging, exiting or raising job is an error result; the pool goes on."""

from __future__ import annotations

from woodpecker.measure.pool import WorkerPool
from woodpecker.testing import faults


def test_faults_are_results_and_the_pool_survives():
    with WorkerPool(2) as pool:
        jobs = [faults.ok, faults.segfault, faults.raises, faults.hang, faults.exits, faults.aborts,
                faults.out_of_memory, faults.ok]
        results = []
        for fn in jobs:
            results.extend(pool.map(fn, [(21,)], timeout_s=20 if fn is not faults.hang else 3))
    ok, seg, exc, hang, exited, aborted, oom, ok2 = results
    assert ok.value == 42 and ok.error is None
    assert "SIGSEGV" in seg.error
    assert "ValueError: bad candidate 21" in exc.error
    assert "timeout" in hang.error
    assert "status 3" in exited.error
    assert "SIGABRT" in aborted.error
    assert "MemoryError" in oom.error
    assert ok2.value == 42, "the pool keeps working after every kind of failure"


def test_map_keeps_order_with_parallel_workers():
    with WorkerPool(2) as pool:
        res = pool.map(faults.ok, [(i,) for i in range(7)], timeout_s=30)
    assert [r.value for r in res] == [2 * i for i in range(7)]
