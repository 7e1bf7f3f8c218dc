"""RayMeasurer: candidates (task, knob points) -> MeasureResults, built and timed on the nodes of a Ray cluster.

    driver (the tuning process; the only writer of the records database)
      set_reference(task)   -> the task and its reference inputs/output, put in the object store once
      measure_many(items)   -> build tasks: 1 CPU each, on any node; the compiled library comes back as bytes in
                               the object store (no shared filesystem anywhere)
                            -> run tasks: every CPU of one node (hard node affinity), at most one per node, after
                               the builds of the batch: a timing never shares a core with a build or another timing
                            <- MeasureResults, in input order

Inside each Ray task the candidate runs in a WorkerPool process, with the same timeouts as the local Measurer:
a candidate that crashes, hangs or computes wrong numbers is a failed result exactly as it is locally (same error
strings). What the Ray layer adds are infrastructure failures: a Ray worker or node that dies (WorkerCrashedError,
NodeDiedError, lost objects...) or a task that hangs past its deadline (ray.wait, then ray.cancel(force=True)).
Those lose only the candidates in flight, which are measured again once, from the build, and then recorded as
failed with the reason.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.metadata
import io
import logging
import os
import platform
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.errors import ClusterError
from woodpecker.lowering.model import Task
from woodpecker.measure.jobs import build_job, run_job
from woodpecker.measure.measurer import MeasureOptions, MeasureResult
from woodpecker.measure.pool import WorkerPool

LOCAL = "local-ray"

# -- what runs inside Ray worker processes ------------------------------------------------------------------------
# One build pool and one run pool per Ray worker process: TVM is imported once per worker, not once per candidate.
_POOLS: dict[str, WorkerPool] = {}
_WORK_DIR: list[str] = []
_REFERENCES: dict[str, str] = {}  # reference digest -> .npz path in this worker's directory


def _work_dir() -> str:
    if not _WORK_DIR:
        path = tempfile.mkdtemp(prefix="woodpecker-ray-")
        atexit.register(shutil.rmtree, path, True)
        _WORK_DIR.append(path)
    return _WORK_DIR[0]


def _pool(kind: str, threads: int) -> WorkerPool:
    pool = _POOLS.get(kind)
    if pool is None:
        # TVM_NUM_THREADS explicitly: Ray sets OMP_NUM_THREADS to the task's CPU count, and the timing must use
        # the session's thread count (it is part of the device key of every record).
        pool = _POOLS[kind] = WorkerPool(1, {"TVM_NUM_THREADS": str(threads)})
    return pool


def node_facts() -> dict[str, Any]:
    """What decides whether a node may time candidates of this session: its CPU and its software."""
    from woodpecker.version import __version__
    from woodpecker.hw.host import _model_name

    return {"cpu_model": _model_name(), "machine": platform.machine(), "woodpecker": __version__,
            "tvm": importlib.metadata.version("apache-tvm")}


def build_candidate(task: Task, knobs: Mapping[str, Any], target: Mapping[str, Any], target_class: str,
                    threads: int, timeout_s: float) -> tuple[dict, bytes]:
    """Compile one candidate on this node; (meta, library bytes). meta["error"] is set when the build failed."""
    path = os.path.join(_work_dir(), f"{uuid.uuid4().hex}.so")
    res = _pool("build", threads).map(build_job, [(task, dict(knobs), dict(target), path, target_class)], timeout_s)[0]
    if res.error is not None:
        return {"error": f"build failed: {res.error}", "build_secs": res.seconds}, b""
    try:
        with open(path, "rb") as f:
            data = f.read()
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return {"error": None, "build_secs": res.value.get("build_secs", res.seconds)}, data


def run_candidate(lib: bytes, func: str, reference: bytes, reference_digest: str, repeat: int, min_repeat_ms: int,
                  rtol: float, threads: int, timeout_s: float, cold_cache: bool = False) -> dict:
    """Check one compiled candidate against the reference, then time it, on this node."""
    io_path = _REFERENCES.get(reference_digest)
    if io_path is None or not os.path.exists(io_path):
        io_path = os.path.join(_work_dir(), f"ref-{reference_digest}.npz")
        with open(io_path, "wb") as f:
            f.write(reference)
        _REFERENCES[reference_digest] = io_path
    lib_path = os.path.join(_work_dir(), f"{uuid.uuid4().hex}.so")
    with open(lib_path, "wb") as f:
        f.write(lib)
    try:
        res = _pool("run", threads).map(run_job, [(lib_path, func, io_path, repeat, min_repeat_ms, rtol, cold_cache)],
                                        timeout_s)[0]
    finally:
        os.unlink(lib_path)  # loaded (or failed): the file is not needed any more
    if res.error is not None:
        return {"run_secs": [], "error": f"run failed: {res.error}"}
    return {"run_secs": list(res.value["run_secs"]), "error": res.value["error"]}


# -- the driver ----------------------------------------------------------------------------------------------------
CONNECT_ATTEMPTS = 3  # connections to a ray:// address that fail while the client server starts up


@dataclasses.dataclass(frozen=True)
class _InFlight:
    index: int  # the candidate
    deadline: float  # time.monotonic() after which the task is cancelled
    allowed_s: float
    extra: Any  # build: the library's object ref; run: the RayNode


@dataclasses.dataclass(frozen=True)
class RayNode:
    node_id: str
    address: str
    cpus: int
    cpu_model: str
    runner: bool  # may time candidates: the session's CPU model (and the runner resource, when one is required)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with the address in the message, where ray.init would retry for a minute."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray cluster address {address!r} is not HOST:PORT, ray://HOST:PORT or {LOCAL!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ClusterError(f"Ray cluster {address}: unreachable ({err.strerror or err})") from None


def _infra_reason(err: BaseException) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}"[:300]


class RayMeasurer:
    """Measure candidates on a Ray cluster: `address` is "ray://HOST:PORT" (Ray client), "HOST:PORT" or "auto"
    (this machine is a node of the cluster), or "local-ray" (a Ray instance started here with `local_cpus`).

    runner_resource: when given, only nodes that declare this custom resource (one unit per node) time candidates;
    the other nodes only build. attempts: how many times a candidate lost to the infrastructure is measured.
    overhead_s: allowance on top of the build/run timeouts for a task's queueing, worker start and data transfer.
    """

    def __init__(self, address: str, target: Mapping[str, Any], target_class: str = "cpu",
                 options: MeasureOptions | None = None, toolchain: Mapping[str, str] | None = None,
                 threads: int | None = None, runner_resource: str | None = None, local_cpus: int | None = None,
                 attempts: int = 2, overhead_s: float = 60.0) -> None:
        from woodpecker import config
        from woodpecker.hw.host import detect

        try:
            import ray
        except ImportError:
            raise ClusterError("Ray is not installed: pip install 'woodpecker[cluster]'") from None
        self._ray = ray
        self.address = address
        self.target = dict(target)
        self.target_class = target_class
        self.options = options or MeasureOptions()  # configured defaults now, not at import
        self.toolchain = dict(toolchain or {})
        self.threads = int(threads or config.prepare_tvm_threads())
        self.runner_resource = runner_resource
        self.attempts = max(1, int(attempts))
        self.overhead_s = float(overhead_s)
        self.cpu_model = detect().model_name
        self.retried = 0  # candidates measured again after an infrastructure failure
        self.lost = 0  # candidates recorded as failed after every attempt was lost
        self._tasks: dict[str, Any] = {}  # task key -> object ref of the Task
        self._references: dict[str, tuple[Any, str]] = {}  # task key -> (object ref of the .npz bytes, digest)
        self._facts: dict[str, dict] = {}  # node id -> node_facts()
        self._facts_checked = False
        self._closed = False
        self._owns = self._connect(address, local_cpus)
        try:
            # max_retries=0: Ray must not re-run a candidate on its own; the retry policy is this class's.
            self._build = ray.remote(num_cpus=1, max_retries=0, num_returns=2)(build_candidate)
            self._run = ray.remote(max_retries=0)(run_candidate)
            self._probe = ray.remote(num_cpus=0, max_retries=0)(node_facts)
            self.nodes = self._refresh_nodes()
            if not any(n.runner for n in self.nodes):
                raise ClusterError(self._no_runner_message())
        except BaseException:
            self.close()
            raise

    # -- connection and nodes --------------------------------------------------------------------------------------
    def _connect(self, address: str, local_cpus: int | None) -> bool:
        ray = self._ray
        if ray.is_initialized():
            return False  # the caller's Ray session: used as it is, and left open
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a tuning session never reports usage
        quiet = dict(logging_level=logging.WARNING, log_to_driver=False)
        try:
            if address == LOCAL:
                ray.init(num_cpus=local_cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
            else:
                if address != "auto":
                    _check_reachable(address)
                for attempt in range(CONNECT_ATTEMPTS):
                    try:
                        ray.init(address=address, **quiet)
                        break
                    except ConnectionError:
                        # A Ray client server starts a server process per client; on a busy head node it can miss
                        # its start-up deadline ("Initialization failure from server"): a fresh attempt usually
                        # finds it up.
                        if attempt + 1 == CONNECT_ATTEMPTS:
                            raise
                        ray.shutdown()
                        time.sleep(2.0 * (attempt + 1))
        except ClusterError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever Ray raises, the user needs the address and the reason
            hint = " (ray:// needs the Ray client: pip install 'ray[client]')" if isinstance(err, ImportError) else ""
            raise ClusterError(f"Ray cluster {address}: cannot connect ({_infra_reason(err)}){hint}") from None
        return True

    def _refresh_nodes(self) -> list[RayNode]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        alive = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
        unknown = [n for n in alive if n["NodeID"] not in self._facts]
        if unknown:
            refs = [self._probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote() for n in unknown]
            ready, pending = ray.wait(refs, num_returns=len(refs), timeout=self.overhead_s)
            for ref in pending:
                ray.cancel(ref, force=True)
            for n, ref in zip(unknown, refs):
                if ref in ready:
                    try:
                        self._facts[n["NodeID"]] = ray.get(ref)
                    except ray.exceptions.RayError:
                        pass  # a node that cannot run a probe is not used for timing; asked again next batch
        mine = node_facts()
        nodes = []
        for n in alive:
            facts = self._facts.get(n["NodeID"])
            software = facts is not None and all(facts[k] == mine[k] for k in ("machine", "woodpecker", "tvm"))
            if facts is not None and not software and not self._facts_checked:
                raise ClusterError(
                    f"Ray cluster {self.address}: node {n['NodeManagerAddress']} runs {facts['machine']} with "
                    f"woodpecker {facts['woodpecker']} / TVM {facts['tvm']}; this driver has {mine['machine']} with "
                    f"woodpecker {mine['woodpecker']} / TVM {mine['tvm']} (every node must match)")
            same_cpu = software and facts["cpu_model"] == mine["cpu_model"]  # type: ignore[index]
            resource_ok = self.runner_resource is None or n["Resources"].get(self.runner_resource, 0) >= 1
            nodes.append(RayNode(n["NodeID"], n["NodeManagerAddress"], int(n["Resources"]["CPU"]),
                                 facts["cpu_model"] if facts else "?", bool(same_cpu and resource_ok)))
        # Checked once, when the session starts; a node that joins later with other software only builds.
        self._facts_checked = True
        return nodes

    def _no_runner_message(self) -> str:
        what = f" that declares the resource {self.runner_resource!r}" if self.runner_resource else ""
        models = sorted({n.cpu_model for n in self.nodes})
        return (f"Ray cluster {self.address}: no live node{what} has this machine's CPU ({self.cpu_model}); "
                f"candidates compiled for it can only be timed on it (nodes have: {', '.join(models) or 'none'})")

    # -- reference data ------------------------------------------------------------------------------------------
    def set_reference(self, task: Task, inputs: Sequence[np.ndarray], expected: np.ndarray) -> None:
        import hashlib

        buf = io.BytesIO()
        arrays = {f"in{i}": np.ascontiguousarray(a) for i, a in enumerate(inputs)}
        np.savez(buf, n_inputs=np.int64(len(inputs)), expected=expected, **arrays)
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()[:24]
        self._references[task.key] = (self._ray.put(data), digest)
        self._tasks[task.key] = self._ray.put(task)

    def has_reference(self, task: Task) -> bool:
        return task.key in self._references

    # -- measuring -----------------------------------------------------------------------------------------------
    def measure(self, task: Task, points: Sequence[Mapping[str, Any]]) -> list[MeasureResult]:
        return self.measure_many([(task, p) for p in points])

    def measure_many(self, items: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[MeasureResult]:
        """Candidates of any tasks: built in parallel across the cluster, then timed one per node."""
        for task, _ in items:
            if task.key not in self._references:
                raise RuntimeError(f"no reference data for task {task.name}; call set_reference first")
        results: list[MeasureResult | None] = [None] * len(items)
        todo = list(range(len(items)))
        for attempt in range(1, self.attempts + 1):
            lost = self._round(items, todo, results)
            if not lost:
                break
            if attempt < self.attempts:
                self.retried += len(lost)
                todo = sorted(lost)
            else:
                self.lost += len(lost)
                for i, (stage, reason) in lost.items():
                    results[i] = MeasureResult((), f"{stage} failed: lost to the Ray cluster {attempt} times "
                                                   f"(last: {reason})")
        return results  # type: ignore[return-value]

    def _round(self, items, todo: list[int], results: list[MeasureResult | None]) -> dict[int, tuple[str, str]]:
        """Build then time the candidates `todo`; fills `results`; returns {index: (stage, reason)} of the lost."""
        o = self.options
        lost: dict[int, tuple[str, str]] = {}
        self.nodes = self._refresh_nodes()
        # Builds: no more in flight than the cluster has CPUs, so that a deadline counts from (about) the start.
        slots = max(1, sum(n.cpus for n in self.nodes))
        built: dict[int, tuple[dict, Any]] = {}
        pending = list(todo)
        running: dict[Any, _InFlight] = {}  # meta ref -> candidate
        while pending or running:
            while pending and len(running) < slots:
                i = pending.pop(0)
                task, knobs = items[i]
                meta, lib = self._build.remote(self._tasks[task.key], dict(knobs), self.target, self.target_class,
                                               self.threads, o.build_timeout_s)
                allowed = o.build_timeout_s + self.overhead_s
                running[meta] = _InFlight(i, time.monotonic() + allowed, allowed, lib)
            for ref, value, reason in self._wait(running):
                entry = running.pop(ref)
                i, lib = entry.index, entry.extra
                if reason is not None:
                    lost[i] = ("build", reason)
                elif value["error"] is not None:
                    results[i] = MeasureResult((), value["error"], value["build_secs"])
                else:
                    built[i] = (value, lib)
        # Runs: one per timing node at a time; each reserves every CPU of its node.
        queue = sorted(built)
        free = [n for n in self.nodes if n.runner]
        if queue and not free:
            for i in queue:
                lost[i] = ("run", self._no_runner_message())
            return lost
        busy: dict[Any, _InFlight] = {}  # run ref -> candidate (extra: its node)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        while queue or busy:
            while queue and free:
                i, node = queue.pop(0), free.pop(0)
                task, _ = items[i]
                ref_bytes, digest = self._references[task.key]
                ref = self._run.options(
                    num_cpus=node.cpus,
                    resources={self.runner_resource: 1} if self.runner_resource else None,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
                ).remote(built[i][1], task.name, ref_bytes, digest, o.repeat, o.min_repeat_ms, o.rtol, self.threads,
                         o.run_timeout_s, o.cold_cache)
                allowed = o.run_timeout_s + self.overhead_s
                busy[ref] = _InFlight(i, time.monotonic() + allowed, allowed, node)
            for ref, value, reason in self._wait(busy):
                entry = busy.pop(ref)
                i, node = entry.index, entry.extra
                build_secs = built[i][0]["build_secs"]
                if reason is None:
                    free.append(node)
                    results[i] = MeasureResult(tuple(value["run_secs"]), value["error"], build_secs)
                    continue
                lost[i] = ("run", reason)
                # The node may be gone: time the rest of the batch on the nodes that are still alive.
                alive = {n.node_id for n in self._refresh_nodes() if n.runner}
                if node.node_id in alive:
                    free.append(node)
                free = [n for n in free if n.node_id in alive]
                if not free and not busy:
                    for j in queue:
                        lost[j] = ("run", self._no_runner_message())
                    queue = []
        return lost

    def _wait(self, running: Mapping[Any, _InFlight]) -> list[tuple[Any, Any, str | None]]:
        """Wait for the first finished task, or the nearest deadline; [(ref, value, infrastructure failure)]."""
        ray = self._ray
        if not running:
            return []
        nearest = min(entry.deadline for entry in running.values())
        ready, _ = ray.wait(list(running), num_returns=1, timeout=max(0.0, nearest - time.monotonic()))
        out: list[tuple[Any, Any, str | None]] = []
        for ref in ready:
            try:
                out.append((ref, ray.get(ref), None))
            except ray.exceptions.RayError as err:  # the worker or node died, an object was lost, ...
                out.append((ref, None, _infra_reason(err)))
        now = time.monotonic()
        for ref, entry in running.items():
            if ref not in ready and now >= entry.deadline:
                ray.cancel(ref, force=True)  # kills the worker process that hangs (and its candidate process)
                out.append((ref, None, f"no answer within {entry.allowed_s:.0f} s; cancelled"))
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._tasks.clear()
        self._references.clear()
        if getattr(self, "_owns", False) and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> RayMeasurer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
