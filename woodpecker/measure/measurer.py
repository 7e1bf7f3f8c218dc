"""Measurer: candidates (task, knob points) -> MeasureResults on the host CPU, built in parallel, timed one at a time.

Builds run in `build_workers` processes with a timeout; compiled libraries are cached on disk by (workload, knobs,
target, toolchain) so a candidate is never compiled twice. Runs happen in a single runner process, after the
builds of the batch are done, so that a timing never shares the cores with a compile or another timing. The
runner uses the thread count of the final runtime (TVM_NUM_THREADS). The skeleton (build the batch, then run it;
references; errors as data) is woodpecker.measure.base.ComposedMeasurer; this module supplies the host's builder
and runner, and the worker-pool stages other backends reuse.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from woodpecker import config
from woodpecker.hw.identity import build_toolchain, toolchain as current_toolchain
from woodpecker.lowering.model import Task
from woodpecker.measure.base import Built, ComposedMeasurer, Ran, RunInput
from woodpecker.measure.jobs import build_job, build_path, run_job
from woodpecker.measure.pool import WorkerPool
from woodpecker.measure.result import MeasureOptions, MeasureResult

__all__ = ["MeasureOptions", "MeasureResult", "Measurer", "PoolBuilder", "PoolRunner", "clear_build_cache"]


# The host runner times each batch's first candidate twice and keeps the second. On these VMs the first job after
# the runner sat idle through a batch's builds ran every one of its 20 cold runs ~4 ms slower (a 78 us kernel:
# 3979 us; the next candidate of the batch 78 us), whatever it was; the tuner measures each task's default in a
# batch of defaults, so the first task of each such batch had a default 2-50x too slow and every schedule tried
# "beat" it (BERT's tuned kernels summed 1.38x faster than their defaults, the tuned model ran 0.97x). Not a warm
# up inside the job: 30 ms of untimed runs before the timing left it as it was; a passive runner pool
# (TVM_THREAD_POOL_SPIN_COUNT=0) removed it but would time kernels unlike the spinning runtime that ships them.
SETTLING_RUN = True


def timed_ran(value: dict) -> Ran:
    """A run job's answer {"run_secs": [...], "error": str | None} as a Ran."""
    return Ran(tuple(value["run_secs"]), value["error"])


class PoolBuilder:
    """Builds candidates in a WorkerPool: `job(*args_of(task, knobs))` returns {"path", "build_secs"}; a job that
    raises, crashes or passes `timeout_s()` fails its candidate only. `pool()` gives the pool at each batch (its
    owner may replace it, e.g. with a wrapper that injects faults in a test)."""

    def __init__(self, pool: Callable[[], WorkerPool], job: Callable[..., dict],
                 args_of: Callable[[Task, Mapping[str, Any]], tuple], timeout_s: Callable[[], float],
                 owns_pool: bool = True) -> None:
        self.pool, self.job, self.args_of, self.timeout_s, self.owns_pool = pool, job, args_of, timeout_s, owns_pool

    def build(self, candidates: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[Built]:
        results = self.pool().map(self.job, [self.args_of(t, k) for t, k in candidates], self.timeout_s())
        return [Built(r.value["path"], None, r.value.get("build_secs", 0.0)) if r.error is None
                else Built(None, f"build failed: {r.error}", r.seconds) for r in results]

    def close(self) -> None:
        if self.owns_pool:
            self.pool().close()


class PoolRunner:
    """Runs built candidates in a WorkerPool: `job(*args_of(run_input))`, its answer read by `read`; a job that
    raises, crashes or passes `timeout_s()` fails its candidate only ("run failed: ...")."""

    def __init__(self, pool: Callable[[], WorkerPool], job: Callable[..., dict], args_of: Callable[[RunInput], tuple],
                 timeout_s: Callable[[], float], read: Callable[[dict], Ran] = timed_ran,
                 owns_pool: bool = True, settling_run: bool = False) -> None:
        self.pool, self.job, self.args_of, self.timeout_s = pool, job, args_of, timeout_s
        self.read, self.owns_pool, self.settling_run = read, owns_pool, settling_run

    def run(self, inputs: Sequence[RunInput]) -> list[Ran]:
        jobs = [self.args_of(x) for x in inputs]
        if self.settling_run and jobs:
            # the batch's first candidate once more, first, its figures dropped (see SETTLING_RUN); one that crashed
            # or hung is not run again: its failure stands (a hang costs one run timeout, not two)
            settle = self.pool().map(self.job, jobs[:1], self.timeout_s())[0]
            if settle.error is None:
                results = self.pool().map(self.job, jobs, self.timeout_s())
            else:
                results = [settle, *(self.pool().map(self.job, jobs[1:], self.timeout_s()) if len(jobs) > 1 else [])]
        else:
            results = self.pool().map(self.job, jobs, self.timeout_s())
        return [self.read(r.value) if r.error is None else Ran((), f"run failed: {r.error}") for r in results]

    def close(self) -> None:
        if self.owns_pool:
            self.pool().close()


class Measurer(ComposedMeasurer):
    def __init__(self, target: Mapping[str, Any], target_class: str = "cpu", build_workers: int | None = None,
                 options: MeasureOptions | None = None, toolchain: Mapping[str, str] | None = None) -> None:
        threads = config.prepare_tvm_threads()
        self.target = dict(target)
        self.target_class = target_class
        self.options = options or MeasureOptions()  # configured defaults now, not at import
        # the versions that decide what is built key the build cache; without them (a probe that passes none) a
        # template change would be served the objects built by the old template
        self.toolchain = build_toolchain(toolchain if toolchain is not None else current_toolchain())
        env = {"TVM_NUM_THREADS": str(threads), "WOODPECKER_CACHE_DIR": str(config.get().cache_dir)}
        self.builders = WorkerPool(build_workers or max(1, (os.cpu_count() or 1)), env)
        self.runner = WorkerPool(1, env)
        self.build_dir = config.get().cache_dir / "builds"
        self.build_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            PoolBuilder(lambda: self.builders, build_job,
                        lambda t, k: (t, dict(k), self.target, self.library_path(t, k), self.target_class),
                        lambda: self.options.build_timeout_s),
            self._make_runner(),
            "woodpecker-io-")

    def _make_runner(self):
        """The host runner: one process, the candidate's output checked, then timed (RpcMeasurer overrides)."""
        o = lambda: self.options  # noqa: E731 (read at each batch: options may be replaced between batches)
        return PoolRunner(lambda: self.runner, run_job,
                          lambda x: (x.built.artifact, x.task.name, x.reference_path, o().repeat, o().min_repeat_ms,
                                     o().rtol, o().cold_cache),
                          lambda: self.options.run_timeout_s, settling_run=SETTLING_RUN)

    def library_path(self, task: Task, knobs: Mapping[str, Any]) -> str:
        return build_path(self.build_dir, task, knobs, self.target, self.toolchain)


def clear_build_cache() -> None:
    for f in pathlib.Path(config.get().cache_dir / "builds").glob("*.so"):
        f.unlink(missing_ok=True)
