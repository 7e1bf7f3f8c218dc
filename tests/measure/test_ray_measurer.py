"""RayMeasurer on a two-node Ray cluster on loopback: the same verdicts as the local Measurer, one-line errors, and
a killed or hung Ray worker costs only a retry of its candidates."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

pytest.importorskip("ray")

from woodpecker.errors import ClusterError  # noqa: E402
from woodpecker.hw.host import target_dict  # noqa: E402
from woodpecker.measure.measurer import MeasureOptions, Measurer  # noqa: E402
from woodpecker.measure.ray_measurer import RayMeasurer  # noqa: E402
from woodpecker.space.space import space_for_task  # noqa: E402
from woodpecker.testing.cluster import LocalRayCluster, free_port  # noqa: E402

OPTIONS = MeasureOptions(repeat=3, min_repeat_ms=5, cold_cache=False)  # hot loops


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster(nodes=2, cpus_per_node=1) as c:
        yield c


def _points(conv_points, n_valid: int):
    """The default, `n_valid - 1` random valid points (seeded), and one illegal point (last)."""
    return conv_points[:n_valid] + [dict(conv_points[0], reduction_order="x,y,z")]


def _verdicts(results):
    return [(r.ok, (r.error or "").split(":")[0]) for r in results]


def test_same_verdicts_as_the_local_measurer(cluster, conv, conv_points):
    task, (inputs, expected) = conv
    points = _points(conv_points, 3)
    with Measurer(target_dict(), options=OPTIONS) as local:
        local.set_reference(task, inputs, expected)
        want = local.measure(task, points)
        local.set_reference(task, inputs, expected + 1.0)
        want_wrong = local.measure(task, points[:1])
    with RayMeasurer(cluster.address, target_dict(), options=OPTIONS) as m:
        assert len([n for n in m.nodes if n.runner]) == 2
        m.set_reference(task, inputs, expected)
        got = m.measure(task, points)
        m.set_reference(task, inputs, expected + 1.0)
        got_wrong = m.measure(task, points[:1])
    assert _verdicts(got) == _verdicts(want)
    assert got[0].ok and len(got[0].run_secs) == 3 and all(s > 0 for s in got[0].run_secs)
    assert got[-1].error.startswith("build failed") and want[-1].error.startswith("build failed")
    assert not got_wrong[0].ok and "wrong result" in got_wrong[0].error and got_wrong[0].error == want_wrong[0].error


def test_unreachable_cluster_is_a_one_line_error():
    port = free_port()
    with pytest.raises(ClusterError, match=f"ray://127.0.0.1:{port}: unreachable") as err:
        RayMeasurer(f"ray://127.0.0.1:{port}", target_dict())
    assert "\n" not in str(err.value)
    with pytest.raises(ClusterError, match="not HOST:PORT"):
        RayMeasurer("ray://nowhere", target_dict())


def _kill_when_busy(cluster, names, sig, stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set() and not killed:
        for pid in cluster.task_workers(*names):
            os.kill(pid, sig)
            killed.append(pid)
            break
        time.sleep(0.05)


def test_killed_worker_loses_only_its_candidates(cluster, conv, conv_points):
    task, (inputs, expected) = conv
    points = _points(conv_points, 3)[:-1] * 2  # valid candidates only: every one must end ok
    with RayMeasurer(cluster.address, target_dict(), options=OPTIONS) as m:
        m.set_reference(task, inputs, expected)
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_when_busy,
                                  args=(cluster, ("build_candidate", "run_candidate"), signal.SIGKILL, stop, killed))
        killer.start()
        try:
            results = m.measure(task, points)
        finally:
            stop.set()
            killer.join()
        assert killed, "no Ray worker was seen executing a candidate"
        assert m.retried >= 1 and m.lost == 0
        assert all(r.ok for r in results), [r.error for r in results]


def test_hung_worker_is_cancelled_and_its_candidate_retried(cluster, conv):
    task, (inputs, expected) = conv
    space = space_for_task(task)
    # A frozen (SIGSTOP) run task never answers: the deadline (run timeout + overhead) cancels it with force.
    with RayMeasurer(cluster.address, target_dict(), options=MeasureOptions(repeat=3, min_repeat_ms=5, run_timeout_s=5),
                     overhead_s=5.0) as m:
        m.set_reference(task, inputs, expected)
        stop, frozen = threading.Event(), []
        freezer = threading.Thread(target=_kill_when_busy,
                                   args=(cluster, ("run_candidate",), signal.SIGSTOP, stop, frozen))
        freezer.start()
        t0 = time.monotonic()
        try:
            results = m.measure(task, [dict(space.default)])
        finally:
            stop.set()
            freezer.join()
        assert frozen, "no Ray worker was seen timing the candidate"
        assert m.retried == 1 and results[0].ok, results[0].error
        assert time.monotonic() - t0 >= 10.0  # it waited for the deadline, not for the frozen worker


def test_cold_cache_timing_on_a_ray_node(cluster, conv, conv_points):
    """A Ray node times as the local runner does with cold caches: single runs after a flush."""
    from woodpecker.measure.jobs import COLD_RUNS

    task, (inputs, expected) = conv
    with RayMeasurer(cluster.address, target_dict(), options=MeasureOptions(repeat=3, min_repeat_ms=5, cold_cache=True)) as m:
        m.set_reference(task, inputs, expected)
        got = m.measure(task, conv_points[:1])[0]
    assert got.ok and len(got.run_secs) == COLD_RUNS and min(got.run_secs) > 0
