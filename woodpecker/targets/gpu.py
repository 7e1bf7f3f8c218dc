"""NVIDIA GPUs (P100 to H100): kernels scheduled with the GPU templates and built into one CUDA library for the
profile's architecture (no GPU needed to compile). Measured with CUDA events when a GPU is attached, else by the
analytical simulator (recorded as simulated). Planned against cuDNN/cuBLAS (through PyTorch) only on a GPU."""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Mapping
from typing import Any

from woodpecker.errors import BuildError
from woodpecker.passes.pipeline import PassOptions
from woodpecker.targets import BuildRequest, Target


class GpuTarget(Target):
    def pass_options(self, blocked_layout: bool | None = None) -> PassOptions:
        # the blocked layout and packed dense weights are CPU vector-register choices
        return PassOptions(blocked_layout=False if blocked_layout is None else blocked_layout, pack_dense=False)

    @property
    def lanes(self) -> int:
        return 32  # a warp

    def space(self, task):
        from woodpecker.space.space import space_for_task

        return space_for_task(task, "gpu", self.lanes, self.profile.target)

    @functools.cached_property
    def simulated(self) -> bool:
        from woodpecker.measure.cuda import gpu_available

        return not gpu_available()

    def measurer(self, build_workers: int | None = None, options: Any = None,
                 toolchain: Mapping[str, str] | None = None):
        from woodpecker.measure.measurer import MeasureOptions

        options = options or MeasureOptions()
        if not self.simulated:
            from woodpecker.measure.cuda import CudaMeasurer

            return CudaMeasurer(self.profile.target, build_workers, options)
        from woodpecker.sim.gpu.measurer import GpuSimMeasurer

        return GpuSimMeasurer(self.profile, build_workers, options)

    def build(self, request: BuildRequest):
        model = self._build_library(request)
        if not request.plan:
            return model
        blocker = self.plan_blocker()
        if blocker:
            model.metadata["plan"] = {"skipped": blocker}
            return model
        from woodpecker.runtime.vendors import DEVICE_VENDORS
        from woodpecker.planner.planner import plan_model

        return plan_model(model, request.lowered, None, vendors=DEVICE_VENDORS, threads=self.threads,
                          progress=request.progress)

    def _build_library(self, request: BuildRequest):
        """Schedule every task for the GPU (tuned knobs where given, else the default GPU schedule) and build them
        into one library for the profile's architecture. Raises BuildError when a task has no GPU schedule: an
        unscheduled loop nest would compile to host code that reads device memory."""
        from woodpecker.codegen.build import build_tasks
        from woodpecker.lowering.to_runtime import kernel_infos
        from woodpecker.runtime.gpu import GpuModel
        from woodpecker.sim.gpu.lower import cuda_target

        target_table = self.tvm_target()
        target = cuda_target(str(target_table["arch"]), target_table.get("host"))
        t0 = time.perf_counter()
        executable, chosen = build_tasks(request.lowered.tasks, request.knobs, target, "gpu")
        unscheduled = [c.task for c in chosen.values() if c.origin == "unscheduled"]
        if unscheduled:
            raise BuildError(f"kernel {unscheduled[0].name} ({unscheduled[0].family}) has no GPU schedule for "
                             f"{self.profile.id}")
        cuda = [m for m in executable.mod.imports if m.kind == "cuda"]
        if not cuda:
            raise BuildError(f"the model compiled for {self.profile.id} has no CUDA kernel")
        source = cuda[0].inspect_source()
        kernels = kernel_infos(request.lowered, {k: (c.knobs, c.origin) for k, c in chosen.items()})
        library_path = _export_to_cache(executable)
        metadata = {**request.metadata, "build_secs": round(time.perf_counter() - t0, 3)}
        return GpuModel(request.program, dict(request.constants), kernels, metadata, library_path, source,
                        executable)

    def plan_blocker(self) -> str:
        """Why a GPU compile cannot be planned here ("" when it can): compiling for a GPU needs no GPU and no CUDA
        toolkit, planning needs both a GPU with a CUDA compiler (to load the kernels) and a CUDA build of PyTorch."""
        if self.simulated:
            return "no GPU attached: vendor choices (cuDNN, cuBLAS) are timed on a GPU"
        from woodpecker.measure.cuda import cuda_compiler

        if cuda_compiler() is None:
            return "no CUDA compiler (NVRTC or nvcc) to load the kernels with"
        try:
            import torch
        except ImportError:
            return "PyTorch is not installed: it is the GPU vendor (cuDNN, cuBLAS)"
        if not torch.cuda.is_available():
            return f"this PyTorch ({torch.__version__}) has no CUDA: install a CUDA build for the cuDNN/cuBLAS choices"
        return ""


def _export_to_cache(executable) -> str:
    """Export the host library into the cache under its content hash, where loading a saved artifact puts it too
    (woodpecker.runtime.artifact), so that compiling the same model again reuses the file instead of leaking one."""
    from woodpecker import config

    cache = config.get().cache_dir / "libs"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"export-{os.getpid()}-{time.time_ns()}.so"
    executable.export_library(str(tmp))
    path = cache / f"{hashlib.sha256(tmp.read_bytes()).hexdigest()}.so"
    os.replace(tmp, path)
    return str(path)
