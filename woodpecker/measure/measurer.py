"""Measurer: candidates (task, knob points) -> MeasureResults, built in parallel, timed one at a time.

Builds run in `build_workers` processes with a timeout; compiled libraries are cached on disk by (workload, knobs,
target, toolchain) so a candidate is never compiled twice. Runs happen in a single runner process, after the
builds of the batch are done, so that a timing never shares the cores with a compile or another timing. The
runner uses the thread count of the final runtime (TVM_NUM_THREADS).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker import config
from woodpecker.hw.identity import build_toolchain
from woodpecker.lowering.model import Task
from woodpecker.measure.jobs import build_job, build_path, run_job
from woodpecker.measure.pool import CallResult, WorkerPool
from woodpecker.measure.reference import ReferenceStore


@dataclasses.dataclass(frozen=True)
class MeasureResult:
    run_secs: tuple[float, ...]  # every timed repeat, seconds; empty on error
    error: str | None
    build_secs: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.run_secs)

    @property
    def cost(self) -> float:
        """Median seconds (inf when the candidate failed): what searchers minimize."""
        return float(np.median(self.run_secs)) if self.ok else float("inf")


@dataclasses.dataclass(frozen=True)
class MeasureOptions:
    repeat: int = 5  # timed repeats per candidate
    min_repeat_ms: int = 20  # each repeat runs the kernel enough times to last this long
    build_timeout_s: float = 120.0
    run_timeout_s: float = 30.0
    rtol: float = 1e-3  # accepted max |out - ref| / max |ref|
    # single runs after a cache flush instead of hot loops (woodpecker.measure.jobs.run_job; WOODPECKER_COLD_CACHE)
    cold_cache: bool = dataclasses.field(default_factory=lambda: config.get().cold_cache)


class Measurer:
    def __init__(self, target: Mapping[str, Any], target_class: str = "cpu", build_workers: int | None = None,
                 options: MeasureOptions | None = None, toolchain: Mapping[str, str] | None = None) -> None:
        threads = config.prepare_tvm_threads()
        self.target = dict(target)
        self.target_class = target_class
        self.options = options or MeasureOptions()  # configured defaults now, not at import
        self.toolchain = build_toolchain(toolchain)
        env = {"TVM_NUM_THREADS": str(threads), "WOODPECKER_CACHE_DIR": str(config.get().cache_dir)}
        self.builders = WorkerPool(build_workers or max(1, (os.cpu_count() or 1)), env)
        self.runner = WorkerPool(1, env)
        self.build_dir = config.get().cache_dir / "builds"
        self.build_dir.mkdir(parents=True, exist_ok=True)
        self._references = ReferenceStore("woodpecker-io-")

    # -- reference data ------------------------------------------------------------------------------------------
    def set_reference(self, task: Task, inputs: Sequence[np.ndarray], expected: np.ndarray) -> None:
        self._references.add(task, inputs, expected)

    def has_reference(self, task: Task) -> bool:
        return task in self._references

    # -- measuring -----------------------------------------------------------------------------------------------
    def library_path(self, task: Task, knobs: Mapping[str, Any]) -> str:
        return build_path(self.build_dir, task, knobs, self.target, self.toolchain)

    def build_many(self, items: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[CallResult]:
        """Compile candidates in the build workers (the on-disk cache first); value: {"path", "build_secs"}."""
        return self.builders.map(
            build_job,
            [(task, dict(p), self.target, self.library_path(task, p), self.target_class) for task, p in items],
            self.options.build_timeout_s,
        )

    def measure(self, task: Task, points: Sequence[Mapping[str, Any]]) -> list[MeasureResult]:
        return self.measure_many([(task, p) for p in points])

    def measure_many(self, items: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[MeasureResult]:
        """Candidates of any tasks: all built in parallel first, then run one by one."""
        self._references.require(task for task, _ in items)
        o = self.options
        builds = self.build_many(items)
        results: list[MeasureResult | None] = [None] * len(items)
        to_run = []
        for i, b in enumerate(builds):
            if b.error is not None:
                results[i] = MeasureResult((), f"build failed: {b.error}", b.seconds)
            else:
                to_run.append(i)
        runs = self.runner.map(
            run_job,
            [(builds[i].value["path"], items[i][0].name, self._references.path(items[i][0]), o.repeat,
              o.min_repeat_ms, o.rtol, o.cold_cache) for i in to_run],
            o.run_timeout_s,
        )
        for i, r in zip(to_run, runs):
            build_secs = builds[i].value.get("build_secs", 0.0)
            if r.error is not None:
                results[i] = MeasureResult((), f"run failed: {r.error}", build_secs)
            else:
                v = r.value
                results[i] = MeasureResult(tuple(v["run_secs"]), v["error"], build_secs)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.builders.close()
        self.runner.close()
        self._references.cleanup()

    def __enter__(self) -> Measurer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clear_build_cache() -> None:
    for f in pathlib.Path(config.get().cache_dir / "builds").glob("*.so"):
        f.unlink(missing_ok=True)
