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
from collections.abc import Mapping
from typing import Any

import numpy as np

from woodpecker import config
from woodpecker.hw.identity import build_toolchain
from woodpecker.lowering.model import Task
from woodpecker.measure.jobs import build_path
from woodpecker.measure.base import ComposedMeasurer, Ran
from woodpecker.measure.measurer import MeasureOptions, PoolBuilder, PoolRunner
from woodpecker.measure.pool import WorkerPool
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
    from woodpecker.measure.correctness import relative_error
    from woodpecker.sim.riscv.kernel import simulate_kernel

    with np.load(io_path, allow_pickle=False) as npz:
        inputs = [npz[f"in{i}"] for i in range(int(npz["n_inputs"]))]
        expected = npz["expected"]
    r = simulate_kernel(obj_path, func, inputs, expected.shape, str(expected.dtype), profile, cache=cache,
                        timeout_s=timeout_s)
    err = relative_error(r.output, expected)
    details = {"cycles": r.cycles, "seconds": r.seconds, "counts": dict(r.counts),
               "per_core_insns": list(r.per_core_insns), "sim_secs": r.sim_secs}
    if not err <= rtol:
        return {"error": f"wrong result: max relative error {err:.3g} > {rtol:g}", **details}
    return {"error": None, **details}


def _simulated_ran(value: dict) -> Ran:
    """simulate_job's answer: the cycle model's estimate in seconds, or the error; the counts as details."""
    if value["error"] is not None:
        return Ran((), value["error"], value)
    return Ran((float(value["seconds"]),), None, value)


class RiscvMeasurer(ComposedMeasurer):
    def __init__(self, profile, build_workers: int | None = None, options: MeasureOptions | None = None,
                 cache: bool = True, toolchain: Mapping[str, str] | None = None) -> None:
        """profile: a riscv/mcu HardwareProfile or its id; cache: simulate the data caches (counts misses)."""
        self.profile = resolve_profile(profile)
        self.options = options or MeasureOptions()  # configured defaults now, not at import
        self.cache = cache
        self.toolchain = build_toolchain(toolchain)
        env = {"WOODPECKER_CACHE_DIR": str(config.get().cache_dir), "TVM_NUM_THREADS": "1"}
        # one pool builds and simulates: a simulated run is deterministic, it needs no core to itself
        self.pool = WorkerPool(build_workers or max(1, os.cpu_count() or 1), env)
        self.build_dir = config.get().cache_dir / "sim" / "objects"
        self.build_dir.mkdir(parents=True, exist_ok=True)
        o = lambda: self.options  # noqa: E731 (read at each batch)
        super().__init__(
            PoolBuilder(lambda: self.pool, build_object_job,
                        lambda t, k: (t, dict(k), self.profile, self.object_path(t, k)),
                        lambda: o().build_timeout_s),
            PoolRunner(lambda: self.pool, simulate_job,
                       lambda x: (x.built.artifact, x.task.name, x.reference_path, self.profile, o().rtol,
                                  self.cache, o().run_timeout_s),
                       # the job's own qemu timeout fires first; this catches a stuck worker
                       lambda: o().run_timeout_s + 10.0, _simulated_ran, owns_pool=False),
            "woodpecker-sim-io-")

    def object_path(self, task: Task, knobs: Mapping[str, Any]) -> str:
        return build_path(self.build_dir, task, knobs, dict(self.profile.target), self.profile.target_class,
                          self.toolchain, suffix=".o")


def clear_object_cache() -> None:
    for f in pathlib.Path(config.get().cache_dir / "sim" / "objects").glob("*.o"):
        f.unlink(missing_ok=True)
