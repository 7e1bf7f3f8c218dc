"""CudaMeasurer: candidates (task, knob points) -> MeasureResults timed on the attached NVIDIA GPU.

Builds run in parallel worker processes: schedule for the GPU, compile with TVM (which stores CUDA source),
export the library, and compile the source to a device binary with nvcc (TVM_CUDA_COMPILE_MODE=nvcc) or, when
cuda-bindings is installed, NVRTC. Binaries are cached by source hash, so the runner, which TVM asks to
compile the source again when it loads the library, finds them ready. Runs happen one at a time in a single
runner process: the output is checked against the reference before anything is timed, then `time_evaluator`
times the kernel (its first call is a discarded warm-up; repeats of at least `min_repeat_ms`). The
architecture is the attached device's (sm_XY from its compute capability), whatever the profile says.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from woodpecker import config
from woodpecker.errors import TargetError
from woodpecker.lowering.model import Task
from woodpecker.measure.jobs import build_path
from woodpecker.measure.base import ComposedMeasurer
from woodpecker.measure.measurer import MeasureOptions, PoolBuilder, PoolRunner
from woodpecker.measure.pool import WorkerPool

# The CUDA helpers live with the runtime, which loads artifacts without the tuner's dependencies; they are
# imported here (not copied) so the tuner and the runtime compile, cache and load device code the same way,
# and so one compile callback state serves a process that both tunes and runs. cuda_compiler and
# gpu_available are part of this module's interface (woodpecker.targets, woodpecker.api import them here).
from woodpecker.runtime.cuda_load import (  # noqa: F401
    cached_binary,
    cuda_compiler,
    device_arch,
    gpu_available,
    install_callback,
)

_MODULES: dict[str, Any] = {}  # loaded libraries, per runner process


def probe_job() -> dict:
    """Runner: the attached GPU (raises when there is none)."""
    import tvm

    dev = tvm.cuda(0)
    if not dev.exist:
        raise RuntimeError("tvm.cuda(0).exist is False")
    return {
        "name": str(dev.device_name),
        "compute_version": str(dev.compute_version),
        "arch": device_arch(),
        "sm_count": int(dev.multi_processor_count),
    }


def cuda_build_job(
    task: Task,
    knobs: Mapping[str, Any],
    target: Mapping[str, Any],
    out_path: str,
    binary_dir: str,
    compiler: str,
) -> dict:
    """Builder: schedule, compile, export the library and pre-compile its CUDA source into the binary cache.
    """
    t0 = time.perf_counter()
    if os.path.exists(out_path):
        return {"path": out_path, "build_secs": 0.0, "cached": True}
    import tvm

    from woodpecker.schedule.apply import schedule

    ex = tvm.compile(schedule(task, knobs, "gpu"), target=tvm.target.Target(dict(target)))
    cuda = [m for m in ex.mod.imports if m.kind == "cuda"]
    if not cuda:
        raise RuntimeError("the schedule produced no CUDA kernel (unbound loops compile to host code only)")
    code = cuda[0].inspect_source()
    cached_binary(binary_dir, code, str(target["arch"]), compiler)  # the runner's load then compiles nothing
    tmp = f"{out_path}.{os.getpid()}.tmp.so"
    ex.export_library(tmp)
    os.replace(tmp, out_path)
    return {"path": out_path, "build_secs": time.perf_counter() - t0, "cached": False}


def cuda_run_job(
    lib_path: str,
    func: str,
    io_path: str,
    repeat: int,
    min_repeat_ms: int,
    rtol: float,
    binary_dir: str,
    compiler: str,
    arch: str,
) -> dict:
    """Runner: load, check the output against the reference, then time (a wrong result is never timed)."""
    import tvm

    from woodpecker.measure.correctness import relative_error

    install_callback(binary_dir, compiler, arch)
    dev = tvm.cuda(0)
    mod = _MODULES.get(lib_path)
    if mod is None:
        mod = tvm.runtime.load_module(lib_path)
        _MODULES.clear()  # one candidate at a time: device memory stays flat over a long session
        _MODULES[lib_path] = mod
    with np.load(io_path, allow_pickle=False) as npz:
        inputs = [npz[f"in{i}"] for i in range(int(npz["n_inputs"]))]
        expected = npz["expected"]
    args = [tvm.runtime.tensor(a, dev) for a in inputs]
    out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
    f = mod[func]
    f(*args, out)
    dev.sync()
    err = relative_error(out.numpy(), expected)
    if not err <= rtol:
        return {"run_secs": [], "error": f"wrong result: max relative error {err:.3g} > {rtol:g}"}
    timer = mod.time_evaluator(func, dev, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
    res = timer(*args, out)
    return {"run_secs": [float(x) for x in res.results], "error": None}


class CudaMeasurer(ComposedMeasurer):
    """The Measurer interface (set_reference / measure / measure_many / close) on a real NVIDIA GPU.

    Args:
        target: TVM target dict (a GPU profile's [target]); its arch is replaced by the attached device's.
            Default: {"kind": "cuda", "host": {"kind": "llvm"}}.
        build_workers: build processes (default: one per core). options: repeats, minimum repeat time,
        timeouts, reference tolerance. compiler: "nvcc" or "nvrtc" (default: NVRTC when cuda-bindings is
        installed, else nvcc).

    Raises TargetError when no NVIDIA GPU is visible or no CUDA compiler is available.
    """

    def __init__(
        self,
        target: Mapping[str, Any] | None = None,
        build_workers: int | None = None,
        options: MeasureOptions | None = None,
        compiler: str | None = None,
    ) -> None:
        self.compiler = compiler or cuda_compiler()
        if self.compiler is None:
            raise TargetError("no CUDA compiler: install cuda-bindings (NVRTC) or put nvcc on the PATH")
        env = {"WOODPECKER_CACHE_DIR": str(config.get().cache_dir), "TVM_CUDA_COMPILE_MODE": self.compiler}
        self.runner = WorkerPool(1, env)
        probe = self.runner.map(probe_job, [()], 120.0)[0]
        if probe.error is not None:
            self.runner.close()
            raise TargetError(
                f"no NVIDIA GPU is visible to TVM ({probe.error}); CudaMeasurer needs one, "
                "GpuSimMeasurer estimates a GPU profile without it"
            )
        self.device: dict = probe.value
        self.measurement = f"real:cuda:{self.device['name']}"  # how records measured here are labelled
        self.target = {
            **dict(target or {"kind": "cuda", "host": {"kind": "llvm"}}),
            "arch": self.device["arch"],
        }
        self.options = options or MeasureOptions()  # configured defaults now, not at import
        self.builders = WorkerPool(build_workers or max(1, os.cpu_count() or 1), env)
        self.build_dir = config.get().cache_dir / "builds-cuda"
        self.binary_dir = str(self.build_dir / "binaries")
        os.makedirs(self.binary_dir, exist_ok=True)
        o = lambda: self.options  # noqa: E731 (read at each batch)
        super().__init__(
            PoolBuilder(lambda: self.builders, cuda_build_job,
                        lambda t, k: (t, dict(k), self.target, self.library_path(t, k), self.binary_dir,
                                      self.compiler),
                        lambda: o().build_timeout_s),
            PoolRunner(lambda: self.runner, cuda_run_job,
                       lambda x: (x.built.artifact, x.task.name, x.reference_path, o().repeat, o().min_repeat_ms,
                                  o().rtol, self.binary_dir, self.compiler, self.target["arch"]),
                       lambda: o().run_timeout_s),
            "woodpecker-cuda-io-")

    def library_path(self, task: Task, knobs: Mapping[str, Any]) -> str:
        return build_path(self.build_dir, task, knobs, self.target, self.compiler)
