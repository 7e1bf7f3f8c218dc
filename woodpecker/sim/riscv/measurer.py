"""RiscvMeasurer: candidates (task, knob points) -> MeasureResults estimated by simulation on a RISC-V/MCU profile.

The same interface as woodpecker.measure.measurer.Measurer (set_reference, measure, measure_many, close), so the
tuner can use either. Candidates are scheduled with the CPU templates and compiled for the profile's TVM target
in parallel worker processes (objects cached on disk by workload, knobs, target and toolchain), then simulated,
also in parallel: a simulated run is deterministic, so runs need not be isolated from each other for timing.
A worker that crashes or hangs costs only its candidate (an error result). Every output is checked against the
reference before its estimate counts; run_secs holds one figure, the cycle model's estimate in seconds.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker import config
from woodpecker.hw.identity import build_toolchain
from woodpecker.lowering.model import Task
from woodpecker.measure.jobs import build_path
from woodpecker.measure.measurer import MeasureOptions, MeasureResult
from woodpecker.measure.pool import WorkerPool
from woodpecker.measure.reference import ReferenceStore
from woodpecker.sim.riscv.kernel import resolve_profile


def build_object_job(task: Task, knobs: Mapping[str, Any], profile, out_path: str) -> dict:
    """Schedule and compile one candidate to an object file (skipped when that file already exists)."""
    t0 = time.perf_counter()
    if os.path.exists(out_path):
        return {"path": out_path, "build_secs": 0.0}
    from woodpecker.schedule.apply import schedule
    from woodpecker.sim.riscv.kernel import build_kernel_object

    mod = schedule(task, dict(knobs), profile.target_class)
    tmp = f"{out_path}.{os.getpid()}.tmp.o"
    build_kernel_object(mod, profile, tmp)
    os.replace(tmp, out_path)
    return {"path": out_path, "build_secs": time.perf_counter() - t0}


def simulate_job(obj_path: str, func: str, io_path: str, profile, rtol: float, cache: bool,
                 timeout_s: float) -> dict:
    """Simulate one built candidate and check its output against the reference."""
    from woodpecker.measure.reference import max_relative_error
    from woodpecker.sim.riscv.kernel import simulate_kernel

    with np.load(io_path, allow_pickle=False) as npz:
        inputs = [npz[f"in{i}"] for i in range(int(npz["n_inputs"]))]
        expected = npz["expected"]
    r = simulate_kernel(obj_path, func, inputs, expected.shape, str(expected.dtype), profile, cache=cache,
                        timeout_s=timeout_s)
    err = max_relative_error(r.output, expected)
    details = {"cycles": r.cycles, "seconds": r.seconds, "counts": dict(r.counts),
               "per_core_insns": list(r.per_core_insns), "sim_secs": r.sim_secs}
    if not err <= rtol:
        return {"error": f"wrong result: max relative error {err:.3g} > {rtol:g}", **details}
    return {"error": None, **details}


class RiscvMeasurer:
    def __init__(self, profile, build_workers: int | None = None, options: MeasureOptions | None = None,
                 cache: bool = True, toolchain: Mapping[str, str] | None = None) -> None:
        """profile: a riscv/mcu HardwareProfile or its id; cache: simulate the data caches (counts misses)."""
        self.profile = resolve_profile(profile)
        self.options = options or MeasureOptions()  # configured defaults now, not at import
        self.cache = cache
        self.toolchain = build_toolchain(toolchain)
        env = {"WOODPECKER_CACHE_DIR": str(config.get().cache_dir), "TVM_NUM_THREADS": "1"}
        self.pool = WorkerPool(build_workers or max(1, os.cpu_count() or 1), env)
        self.build_dir = config.get().cache_dir / "sim" / "objects"
        self.build_dir.mkdir(parents=True, exist_ok=True)
        self._references = ReferenceStore("woodpecker-sim-io-")
        self.last_details: list[dict | None] = []  # cycles, counts, per-core counts of the last batch

    # -- reference data ------------------------------------------------------------------------------------------
    def set_reference(self, task: Task, inputs: Sequence[np.ndarray], expected: np.ndarray) -> None:
        self._references.add(task, inputs, expected)

    def has_reference(self, task: Task) -> bool:
        return task in self._references

    # -- measuring -----------------------------------------------------------------------------------------------
    def object_path(self, task: Task, knobs: Mapping[str, Any]) -> str:
        return build_path(self.build_dir, task, knobs, dict(self.profile.target), self.profile.target_class,
                          self.toolchain, suffix=".o")

    def measure(self, task: Task, points: Sequence[Mapping[str, Any]]) -> list[MeasureResult]:
        return self.measure_many([(task, p) for p in points])

    def measure_many(self, items: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[MeasureResult]:
        """Candidates of any tasks: all built in parallel, then all simulated in parallel."""
        self._references.require(task for task, _ in items)
        o = self.options
        builds = self.pool.map(
            build_object_job,
            [(task, dict(p), self.profile, self.object_path(task, p)) for task, p in items],
            o.build_timeout_s,
        )
        results: list[MeasureResult | None] = [None] * len(items)
        details: list[dict | None] = [None] * len(items)
        to_run = []
        for i, b in enumerate(builds):
            if b.error is not None:
                results[i] = MeasureResult((), f"build failed: {b.error}", b.seconds)
            else:
                to_run.append(i)
        runs = self.pool.map(
            simulate_job,
            [(builds[i].value["path"], items[i][0].name, self._references.path(items[i][0]), self.profile, o.rtol,
              self.cache, o.run_timeout_s) for i in to_run],
            o.run_timeout_s + 10.0,  # the job's own qemu timeout fires first; this catches a stuck worker
        )
        for i, r in zip(to_run, runs):
            build_secs = builds[i].value.get("build_secs", 0.0)
            if r.error is not None:
                results[i] = MeasureResult((), f"run failed: {r.error}", build_secs)
                continue
            v = r.value
            details[i] = v
            if v["error"] is not None:
                results[i] = MeasureResult((), v["error"], build_secs)
            else:
                results[i] = MeasureResult((float(v["seconds"]),), None, build_secs)
        self.last_details = details
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.pool.close()
        self._references.cleanup()

    def __enter__(self) -> RiscvMeasurer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clear_object_cache() -> None:
    for f in pathlib.Path(config.get().cache_dir / "sim" / "objects").glob("*.o"):
        f.unlink(missing_ok=True)
