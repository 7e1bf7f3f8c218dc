"""RpcMeasurer against a TVM RPC tracker and server on loopback, started by the test: the same verdicts as the
local Measurer, one-line errors, and a device that disappears mid-session (server SIGKILLed) costs only the
candidates in flight; the session goes on once a server registers again."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("tornado")  # the tracker (python -m tvm.exec.rpc_tracker) needs it

from woodpecker.errors import ClusterError  # noqa: E402
from woodpecker.hw.host import target_dict  # noqa: E402
from woodpecker.measure.measurer import MeasureOptions, Measurer  # noqa: E402
from woodpecker.measure.rpc_measurer import RpcMeasurer  # noqa: E402
from woodpecker.testing.cluster import LocalRpcTracker  # noqa: E402

OPTIONS = MeasureOptions(repeat=3, min_repeat_ms=5, run_timeout_s=20, cold_cache=False)  # hot
KEY = "woodpecker-test"


@pytest.fixture(scope="module")
def tracker():
    with LocalRpcTracker() as t:
        yield t


def _rpc(tracker, options: MeasureOptions = OPTIONS, **kwargs) -> RpcMeasurer:
    host, port = tracker.address.split(":")
    return RpcMeasurer(host, int(port), KEY, target_dict(), options=options, build_workers=1, **kwargs)


def test_same_verdicts_as_the_local_measurer(tracker, conv, conv_points):
    task, (inputs, expected) = conv
    server = tracker.start_server(KEY)
    try:
        points = conv_points[:3]
        with Measurer(target_dict(), options=OPTIONS) as local:
            local.set_reference(task, inputs, expected)
            want = local.measure(task, points)
        with _rpc(tracker) as m:
            m.set_reference(task, inputs, expected)
            got = m.measure(task, points)
            m.set_reference(task, inputs, expected + 1.0)
            wrong = m.measure(task, points[:1])
        assert [r.ok for r in got] == [r.ok for r in want] == [True] * 3
        assert all(len(r.run_secs) == 3 and min(r.run_secs) > 0 for r in got)
        assert not wrong[0].ok and "wrong result" in wrong[0].error and not wrong[0].run_secs
    finally:
        tracker.kill_server(server)


def test_cold_cache_timing_on_the_device(tracker, conv, conv_points):
    """The device times as the local runner does with cold caches: single runs after a flush."""
    import dataclasses

    from woodpecker.measure.jobs import COLD_RUNS

    task, (inputs, expected) = conv
    server = tracker.start_server(KEY)
    try:
        with _rpc(tracker, dataclasses.replace(OPTIONS, cold_cache=True)) as m:
            m.set_reference(task, inputs, expected)
            got = m.measure(task, conv_points[:1])[0]
        assert got.ok and len(got.run_secs) == COLD_RUNS and min(got.run_secs) > 0
    finally:
        tracker.kill_server(server)


def test_unknown_key_and_unreachable_tracker_are_one_line_errors(tracker):
    host, port = tracker.address.split(":")
    with pytest.raises(ClusterError, match="no server with key 'nobody'") as err:
        RpcMeasurer(host, int(port), "nobody", target_dict(), options=OPTIONS, build_workers=1)
    assert "\n" not in str(err.value)
    from woodpecker.testing.cluster import free_port

    with pytest.raises(ClusterError) as err:
        RpcMeasurer("127.0.0.1", free_port(), KEY, target_dict(), options=OPTIONS, build_workers=1)
    assert "\n" not in str(err.value)


def test_device_lost_mid_session_is_survived(tracker, conv, conv_points):
    task, (inputs, expected) = conv
    server = tracker.start_server(KEY)
    points = conv_points[:4]
    with _rpc(tracker, reconnect_attempts=40, reconnect_wait_s=0.5) as m:
        m.set_reference(task, inputs, expected)
        first = m.measure(task, points[:1])
        assert first[0].ok, first[0].error
        # the device disappears while the next batch is being timed, and a new server registers a little later
        replacement: list = []

        def kill_then_restart() -> None:
            time.sleep(0.5)
            tracker.kill_server(server)
            time.sleep(2.0)
            replacement.append(tracker.start_server(KEY))

        chaos = threading.Thread(target=kill_then_restart)
        chaos.start()
        try:
            during = m.measure(task, points[1:] * 3)
        finally:
            chaos.join()
        after = m.measure(task, points[:2])
        lost = m.lost
        for proc in replacement:
            tracker.kill_server(proc)
    assert lost >= 1, "the device was never seen gone: the test did not test anything"
    assert len(during) == len(points[1:]) * 3
    assert all(r.ok or r.error.startswith("run failed") for r in during), [r.error for r in during]
    # the session is usable again once the device is back: nothing failed for good
    assert all(r.ok for r in after), [r.error for r in after]
