"""RpcMeasurer: candidates (task, knob points) -> MeasureResults, built here, timed on a device leased from a TVM RPC
tracker, the way TVM tunes boards and phones.

    builds: local worker processes (WorkerPool + build_job, sharing the local Measurer's build cache)
    runs:   one worker process holds an RPC session, leased with tracker.request(key, priority, session_timeout):
            upload the library, load it on the device, run it on remote tensors, compare the output with the
            reference here, time it with the device's own time_evaluator

Every remote step happens inside that worker process, under a deadline: a device that hangs costs one timeout and
a killed worker, never the session. A device that disappears loses the candidate in flight (recorded as failed);
the tracker is then asked for the device again, a bounded number of times. While it stays away, candidates fail
at once with the reason, so a session ends its budget with failures recorded instead of waiting forever; when the
device registers again, measuring resumes.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.errors import ClusterError
from woodpecker.measure.base import Ran, RunInput
from woodpecker.measure.measurer import MeasureOptions, Measurer

# -- the tracker's protocol (tvm.rpc.base), with a socket timeout: TrackerSession retries a refused connection for
# a minute, and a summary must never block the session ------------------------------------------------------------


def tracker_summary(host: str, port: int, timeout_s: float = 5.0) -> dict:
    """The tracker's summary: {"server_info": [{"key": "server:KEY", "addr": ...}], "queue_info": {KEY: {...}}}."""
    from tvm.rpc import base

    where = f"RPC tracker {host}:{port}"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            magic = struct.unpack("<i", base.recvall(sock, 4))[0]
            if magic != base.RPC_TRACKER_MAGIC:
                raise ClusterError(f"{where}: not a TVM RPC tracker")
            base.sendjson(sock, [base.TrackerCode.SUMMARY])
            value = base.recvjson(sock)
    except ClusterError:
        raise
    except (OSError, struct.error, json.JSONDecodeError) as err:
        raise ClusterError(f"{where}: unreachable ({getattr(err, 'strerror', None) or err})") from None
    if not value or value[0] != base.TrackerCode.SUCCESS:
        raise ClusterError(f"{where}: unexpected answer to a summary request ({value!r})")
    return value[1]


def servers_for(summary: Mapping[str, Any], key: str) -> int:
    """Servers registered under `key` (free or busy)."""
    return sum(1 for s in summary.get("server_info", []) if s.get("key", "").split(":", 1)[-1] == key)


# -- what runs inside the RPC worker process -----------------------------------------------------------------------
_STATE: dict[str, Any] = {}  # "session", "ident", "since", "inputs": {(io path, mtime, size): (remote args, expected)}


def _session(tracker_host: str, tracker_port: int, key: str, priority: int, session_timeout_s: float, threads: int):
    """The leased RPC session of this worker, requested again when missing, from another tracker/key, or old."""
    from tvm import rpc

    ident = (tracker_host, int(tracker_port), key)
    # Renew before the server's own session timeout can cut a measurement in half.
    fresh = time.monotonic() - _STATE.get("since", 0.0) < session_timeout_s * 0.5
    if _STATE.get("session") is not None and _STATE.get("ident") == ident and fresh:
        return _STATE["session"]
    _drop_session()
    if servers_for(tracker_summary(tracker_host, tracker_port), key) == 0:
        raise ConnectionError(f"no server is registered with key {key!r}")
    sess = rpc.connect_tracker(tracker_host, int(tracker_port)).request(
        key, priority=priority, session_timeout=int(session_timeout_s), max_retry=1)
    if threads:
        try:
            # Timings use the session's thread count (part of the device key), whatever the server was started with.
            sess.get_function("runtime.config_threadpool")(1, int(threads))
        except Exception:  # noqa: BLE001 - a runtime without it times with its own pool
            pass
    _STATE.update(session=sess, ident=ident, since=time.monotonic(), inputs={})
    return sess


def _drop_session() -> None:
    _STATE.pop("session", None)
    _STATE["inputs"] = {}


def _answers(sess) -> bool:
    """Does the remote still answer? Tells a candidate that failed on a live device from a device that is gone."""
    try:
        # A round trip that has to reach the device (Device.exist is answered without it).
        sess.get_function("runtime.config_threadpool")
        return True
    except Exception:  # noqa: BLE001
        return False


def rpc_device_job(tracker_host: str, tracker_port: int, key: str, priority: int, session_timeout_s: float,
                   threads: int) -> dict:
    """Lease the device once and say what it is: {"cpu": LLVM CPU name, or None for a runtime-only server}."""
    sess = _session(tracker_host, tracker_port, key, priority, session_timeout_s, threads)
    try:
        cpu = str(sess.get_function("target.llvm_get_system_cpu")())
    except Exception:  # noqa: BLE001 - a C++ runtime-only server (a phone, a board) has no LLVM
        cpu = None
    return {"cpu": cpu}


def rpc_run_job(tracker_host: str, tracker_port: int, key: str, priority: int, session_timeout_s: float,
                threads: int, lib_path: str, func: str, io_path: str, repeat: int, min_repeat_ms: int,
                rtol: float, cold_cache: bool = False) -> dict:
    """Upload, load, check and time one candidate on the device. {"run_secs", "error", "lost"}: `lost` is true when
    the device (not the candidate) failed."""
    from woodpecker import config

    config.prepare_tvm_threads()
    import tvm

    from woodpecker.measure.jobs import cpu_timer
    from woodpecker.measure.pool import describe_error
    from woodpecker.measure.correctness import relative_error

    try:
        sess = _session(tracker_host, tracker_port, key, priority, session_timeout_s, threads)
    except Exception as err:  # noqa: BLE001
        return {"run_secs": [], "error": f"RPC device {key!r} unavailable: {describe_error(err)}", "lost": True}
    try:
        remote_name = f"wp-{os.path.basename(lib_path)}"
        sess.upload(lib_path, remote_name)
        mod = sess.load_module(remote_name)
        sess.remove(remote_name)  # loaded: keep the device's disk from filling over a long session
        dev = sess.cpu(0)
        stat = os.stat(io_path)
        ident = (io_path, stat.st_mtime_ns, stat.st_size)  # set_reference may rewrite the same file
        cached = _STATE["inputs"].get(ident)
        if cached is None:
            with np.load(io_path, allow_pickle=False) as npz:
                n_in = int(npz["n_inputs"])
                # Inputs go to the device once per task, not once per candidate.
                args = [tvm.runtime.tensor(npz[f"in{i}"], dev) for i in range(n_in)]
                expected = npz["expected"]
            cached = _STATE["inputs"][ident] = (args, expected)
        args, expected = cached
        out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
        mod[func](*args, out)
        err = relative_error(out.numpy(), expected)
        if not err <= rtol:
            return {"run_secs": [], "error": f"wrong result: max relative error {err:.3g} > {rtol:g}", "lost": False}
        res = cpu_timer(mod, func, dev, repeat, min_repeat_ms, cold_cache)(*args, out)
        return {"run_secs": [float(x) for x in res.results], "error": None, "lost": False}
    except Exception as err:  # noqa: BLE001
        if _answers(sess):
            return {"run_secs": [], "error": f"run failed: {describe_error(err)}", "lost": False}
        _drop_session()
        return {"run_secs": [], "error": f"RPC device {key!r} lost: {describe_error(err)}", "lost": True}


# -- the driver ----------------------------------------------------------------------------------------------------
class RpcMeasurer(Measurer):
    """Build locally, time on the device leased from the tracker at tracker_host:tracker_port under `key`.

    connect_timeout_s: allowance for leasing the device (and a fresh worker's start) on top of run_timeout_s.
    reconnect_attempts / reconnect_wait_s: after the device was lost, how often and how long apart the tracker is
    asked whether a server with the key is back; after that, candidates fail at once until the next batch asks again.
    """

    def __init__(self, tracker_host: str, tracker_port: int, key: str, target: Mapping[str, Any],
                 target_class: str = "cpu", build_workers: int | None = None,
                 options: MeasureOptions | None = None, toolchain: Mapping[str, str] | None = None, *,
                 priority: int = 1, session_timeout_s: float = 600.0, threads: int | None = None,
                 connect_timeout_s: float = 60.0, reconnect_attempts: int = 3, reconnect_wait_s: float = 10.0) -> None:
        from woodpecker import config

        super().__init__(target, target_class, build_workers, options, toolchain)
        self.tracker_host, self.tracker_port, self.key = tracker_host, int(tracker_port), key
        self.where = f"RPC device {key!r} at tracker {tracker_host}:{self.tracker_port}"
        self.priority = int(priority)
        self.session_timeout_s = float(session_timeout_s)
        self.threads = int(threads or config.prepare_tvm_threads())
        self.connect_timeout_s = float(connect_timeout_s)
        self.reconnect_attempts = max(1, int(reconnect_attempts))
        self.reconnect_wait_s = float(reconnect_wait_s)
        self.lost = 0  # candidates lost with the device
        self.down = False  # the device was lost and has not registered again
        try:
            summary = tracker_summary(tracker_host, self.tracker_port)
            if servers_for(summary, key) == 0:
                keys = sorted({s.get("key", "").split(":", 1)[-1] for s in summary.get("server_info", [])})
                raise ClusterError(f"RPC tracker {tracker_host}:{self.tracker_port}: no server with key {key!r} "
                                   f"(keys: {', '.join(keys) or 'none'})")
            probe = self.runner.map(rpc_device_job, [self._lease_args()], self.connect_timeout_s)[0]
            if probe.error is not None:
                raise ClusterError(f"{self.where}: cannot lease it ({probe.error})")
            # Records are keyed by "<CPU>/<threads>t" of the machine that compiles: they are true of the device
            # only when it is that CPU (and the timing uses that thread count, set on the device per lease).
            cpu = probe.value["cpu"]
            if cpu is None:
                raise ClusterError(f"{self.where}: the device does not report its CPU (a runtime-only server); "
                                   f"this version times only on devices of the CPU it compiles for")
            if cpu != self.target.get("mcpu"):
                raise ClusterError(f"{self.where}: the device is a {cpu} CPU but this session compiles for "
                                   f"{self.target.get('mcpu')}; cross-compiled RPC tuning is not supported yet")
        except BaseException:
            self.close()
            raise

    def _lease_args(self) -> tuple:
        return (self.tracker_host, self.tracker_port, self.key, self.priority, self.session_timeout_s, self.threads)

    def _device_registered(self) -> bool:
        try:
            return servers_for(tracker_summary(self.tracker_host, self.tracker_port), self.key) > 0
        except ClusterError:
            return False  # the tracker itself is away: the same as no device

    def _await_device(self) -> bool:
        """Bounded wait for a server with the key to register with the tracker again."""
        for attempt in range(self.reconnect_attempts):
            if self._device_registered():
                self.down = False
                return True
            if attempt + 1 < self.reconnect_attempts:
                time.sleep(self.reconnect_wait_s)
        self.down = True
        return False

    def _make_runner(self):
        return _RpcRunner(self)


class _RpcRunner:
    """Times built candidates one by one on the leased device (the measurer's runner process holds the session).
    A candidate lost with the device is recorded as failed; the next one waits (boundedly) for the device to
    register again, and a new batch asks the tracker again, so a session resumes when the device is back."""

    def __init__(self, measurer: RpcMeasurer) -> None:
        self.m = measurer

    def run(self, inputs: Sequence[RunInput]) -> list[Ran]:
        m, o = self.m, self.m.options
        if m.down:
            m._await_device()
        results: list[Ran] = []
        for x in inputs:
            if m.down:
                results.append(Ran((), f"run failed: {m.where} unavailable (not registered)"))
                continue
            args = m._lease_args() + (x.built.artifact, x.task.name, x.reference_path, o.repeat, o.min_repeat_ms,
                                      o.rtol, o.cold_cache)
            r = m.runner.map(rpc_run_job, [args], o.run_timeout_s + m.connect_timeout_s)[0]
            if r.error is None and not r.value["lost"]:
                results.append(Ran(tuple(r.value["run_secs"]), r.value["error"]))
                continue
            # The device, or the worker holding its session, is gone (or hung and was killed): this candidate is
            # lost; the next one waits (boundedly) for the device to register again.
            reason = r.error if r.error is not None else r.value["error"]
            results.append(Ran((), f"run failed: {reason}"))
            m.lost += 1
            m._await_device()
        return results

    def close(self) -> None:
        self.m.runner.close()
