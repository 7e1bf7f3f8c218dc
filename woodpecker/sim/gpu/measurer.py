"""GpuSimMeasurer: candidates (task, knob points) -> MeasureResults estimated by the analytical GPU model.

For a GPU that is not attached. Each candidate is scheduled, lowered to device TIR and its features extracted
in worker processes (optionally with ptxas register counts); the parent applies the model for the profile and
returns MeasureResult(run_secs=(estimated seconds,)). Nothing runs on a GPU, so no candidate's output can be
checked. Instead the task's unscheduled algorithm is compiled for the CPU (llvm) and checked against the
reference once per task; a GPU schedule is then trusted to compute the same thing because TVM's schedule
primitives (split, reorder, bind, cache_read/write, compute_at, decompose_reduction, ...) preserve semantics
or raise a ScheduleError. What this cannot catch: bugs in TVM's GPU lowering or code generation, and races TVM
does not prevent. A candidate that cannot be scheduled, has no CUDA kernel, or cannot launch on the profile's
GPU (threads, shared memory) is a failed result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker import config
from woodpecker.lowering.model import Task
from woodpecker.measure.base import Built, ComposedMeasurer, Ran, RunInput
from woodpecker.measure.measurer import MeasureOptions, MeasureResult
from woodpecker.measure.pool import WorkerPool
from woodpecker.sim.gpu.features import KernelFeatures
from woodpecker.sim.gpu.model import Efficiency, GpuDevice, GpuEstimate, GpuLaunchError, estimate
from woodpecker.space.space import canonical_json

MEASUREMENT = "simulated:analytical-gpu"


def features_job(task: Task, knobs: Mapping[str, Any], arch: str, use_ptxas: bool) -> dict:
    """Worker: schedule for the GPU, lower to device TIR, extract features (and ptxas registers and spills when asked).
    """
    t0 = time.perf_counter()
    from woodpecker.schedule.apply import schedule
    from woodpecker.sim.gpu.features import extract_module
    from woodpecker.sim.gpu.lower import cuda_target, lower_device

    mod = schedule(task, knobs, "gpu")
    feats = [f.to_json() for f in extract_module(lower_device(mod, arch))]
    registers: dict[str, int] = {}
    spill_bytes: dict[str, int] = {}
    if use_ptxas:
        import tvm

        from woodpecker.sim.gpu.nvcc import compile_source

        source = tvm.compile(mod, target=cuda_target(arch)).mod.imports[0].inspect_source()
        result = compile_source(source, arch)
        if not result.ok:
            first = next((ln for ln in result.log.splitlines() if "error" in ln), result.log[:200])
            raise RuntimeError(f"nvcc rejected the kernel: {first.strip()}")
        registers, spill_bytes = dict(result.registers), dict(result.spill_bytes)
    return {"features": feats, "registers": registers, "spill_bytes": spill_bytes,
            "build_secs": time.perf_counter() - t0}


def verify_job(task: Task, io_path: str, rtol: float) -> dict:
    """Worker: the unscheduled algorithm, compiled for the CPU, against the reference output."""
    import tvm

    from woodpecker.measure.correctness import relative_error
    from woodpecker.schedule.apply import prim_func

    func = prim_func(task).with_attr("global_symbol", task.name)
    ex = tvm.compile(tvm.IRModule({task.name: func}), target="llvm")
    dev = tvm.cpu(0)
    with np.load(io_path, allow_pickle=False) as npz:
        inputs = [npz[f"in{i}"] for i in range(int(npz["n_inputs"]))]
        expected = npz["expected"]
    out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
    ex[task.name](*[tvm.runtime.tensor(a, dev) for a in inputs], out)
    err = relative_error(out.numpy(), expected)
    if not err <= rtol:
        raise ValueError(
            f"the algorithm disagrees with the reference: max relative error {err:.3g} > {rtol:g}"
        )
    return {"max_relative_error": err}


class _FeatureBuilder:
    """Schedules, lowers and extracts each candidate's kernel features in the pool (cached per candidate: an
    estimate is deterministic). A task whose algorithm failed its reference check builds nothing."""

    def __init__(self, m: GpuSimMeasurer) -> None:
        self.m = m
        self._built: dict[tuple[str, str], Built] = {}

    def build(self, candidates: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[Built]:
        m = self.m
        keys = [(task.key, canonical_json(p)) for task, p in candidates]
        todo = [i for i, k in enumerate(keys) if k not in self._built and m.verified[candidates[i][0].key] is None]
        jobs = [(candidates[i][0], dict(candidates[i][1]), m.device.arch, m.use_ptxas) for i in todo]
        for i, b in zip(todo, m.builders.map(features_job, jobs, m.options.build_timeout_s), strict=True):
            self._built[keys[i]] = (Built(b.value, None, b.value["build_secs"]) if b.error is None
                                    else Built(None, f"build failed: {b.error}", b.seconds))
        out = []
        for (task, _), key in zip(candidates, keys, strict=True):
            failure = m.verified[task.key]
            out.append(Built(None, f"reference check failed: {failure}") if failure is not None else self._built[key])
        return out

    def close(self) -> None:
        self.m.builders.close()


class _ModelRunner:
    """Applies the profile's analytical model to the features, here in the parent (it is arithmetic)."""

    def __init__(self, m: GpuSimMeasurer) -> None:
        self.m = m

    def run(self, inputs: Sequence[RunInput]) -> list[Ran]:
        return [self._estimate(x.built.artifact) for x in inputs]

    def _estimate(self, v: dict) -> Ran:
        feats = [KernelFeatures.from_json(f) for f in v["features"]]
        try:
            est = estimate(feats, self.m.device, v["registers"] or None, self.m.efficiency,
                           v.get("spill_bytes") or None)
        except GpuLaunchError as err:
            return Ran((), f"does not launch: {err}")
        return Ran((est.seconds,), None, est)

    def close(self) -> None:
        pass


class GpuSimMeasurer(ComposedMeasurer):
    """The Measurer interface (set_reference / measure / measure_many / close) for a simulated GPU profile.

    Args:
        profile: a HardwareProfile of kind "gpu" (or its id / alias). build_workers: processes that schedule,
        lower and extract candidates (default: one per core). options: timeouts and the reference tolerance
        (repeat counts do not apply: an estimate is deterministic). use_ptxas: compile every candidate with
        nvcc for exact register counts (~0.5-1 s each; sm_75 stands in
            for older GPUs); otherwise the model estimates registers.
        efficiency: fitted efficiency factors (default: the profile's `model_efficiency` table, else 1.0).
    """

    measurement = MEASUREMENT  # how records measured here are labelled

    def __init__(
        self,
        profile,
        build_workers: int | None = None,
        options: MeasureOptions | None = None,
        use_ptxas: bool = False,
        efficiency: Efficiency | None = None,
    ) -> None:
        if isinstance(profile, str):
            from woodpecker.hw.profile import load_profile

            profile = load_profile(profile)
        if profile.kind != "gpu":
            raise ValueError(f"GpuSimMeasurer needs a GPU profile, got {profile.id} ({profile.kind})")
        self.profile = profile
        self.device = GpuDevice.from_profile(profile)
        self.efficiency = efficiency or Efficiency.from_json(profile.params.get("model_efficiency", {}))
        self.options = options or MeasureOptions()  # configured defaults now, not at import
        self.use_ptxas = use_ptxas
        env = {"TVM_NUM_THREADS": "1", "WOODPECKER_CACHE_DIR": str(config.get().cache_dir)}
        self.builders = WorkerPool(build_workers or max(1, os.cpu_count() or 1), env)
        self.verified: dict[str, str | None] = {}  # task key -> None (checked) or the failure
        super().__init__(_FeatureBuilder(self), _ModelRunner(self), "woodpecker-gpusim-")

    # -- reference data --------------------------------------------------------------------------------------
    def set_reference(self, task: Task, inputs: Sequence[np.ndarray], expected: np.ndarray) -> None:
        super().set_reference(task, inputs, expected)
        self.verified.pop(task.key, None)

    # -- measuring -------------------------------------------------------------------------------------------
    def measure_many(self, items: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[MeasureResult]:
        self._references.require(task for task, _ in items)
        self._verify({task.key: task for task, _ in items})
        return super().measure_many(items)

    def estimate_many(self, items: Sequence[tuple[Task, Mapping[str, Any]]]) -> list[GpuEstimate | str]:
        """The model's full estimate of each candidate (terms, occupancy, limiter), or the failure message."""
        results = self.measure_many(items)
        return [e if e is not None else (r.error or "") for r, e in zip(results, self.last_details, strict=True)]

    def _verify(self, tasks: Mapping[str, Task]) -> None:
        """The task's unscheduled algorithm, compiled for the CPU, against the reference: once per task."""
        pending = [t for k, t in tasks.items() if k not in self.verified]
        if not pending:
            return
        o = self.options
        results = self.builders.map(
            verify_job, [(t, self._references.path(t), o.rtol) for t in pending], o.build_timeout_s
        )
        for t, r in zip(pending, results, strict=True):
            self.verified[t.key] = r.error
