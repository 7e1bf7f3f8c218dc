"""The host CPU: kernels built into one host library with the detected -mcpu, timed for real; the planner then
times vendor libraries (onnxruntime, PyTorch, numpy BLAS) per call and whole-model, and ships the fastest."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from woodpecker.passes.pipeline import PassOptions

from woodpecker.targets import BuildRequest, Target


class CpuTarget(Target):
    def pass_options(self, blocked_layout: bool | None = None) -> PassOptions:
        # one flat arena: a concat's inputs can be written in place (woodpecker.passes.concat_in_place); channel
        # counts no full register divides are padded to whole registers (AVX2 8 lanes, AVX-512 16), not run in
        # narrower blocks (woodpecker.passes.layout); 3x3 stride-1 convolutions by Winograd (a schedule of this
        # host's vector registers: woodpecker.schedule.cpu_winograd)
        lanes = self.lanes
        return dataclasses.replace(super().pass_options(blocked_layout), concat_in_place=True,
                                   pad_channels=lanes if lanes >= 8 else 0, winograd=True)

    @property
    def lanes(self) -> int:
        from woodpecker.hw.host import detect

        return max(1, detect().vector_bits // 32)

    def tvm_target(self) -> dict[str, Any]:
        from woodpecker.hw.host import target_dict

        return target_dict(self.threads)

    def device(self):
        from woodpecker.hw.identity import device_for

        return device_for(self.profile, self.threads)

    def describe(self) -> dict[str, Any]:
        from woodpecker.hw.host import detect

        return {**super().describe(), "mcpu": detect().mcpu, "threads": self.threads}

    def building_message(self, kernels: int) -> str:
        return f"building {kernels} kernels"

    def measurer(self, build_workers: int | None = None, options: Any = None,
                 toolchain: Mapping[str, str] | None = None):
        from woodpecker.measure.measurer import MeasureOptions, Measurer

        return Measurer(self.tvm_target(), "cpu", build_workers, options or MeasureOptions(), toolchain)

    def build(self, request: BuildRequest):
        from woodpecker.codegen.build import build_tasks
        from woodpecker.lowering.to_runtime import kernel_infos
        from woodpecker.runtime.compiled import CompiledModel

        lowered = request.lowered
        executable, chosen = build_tasks(lowered.tasks, request.knobs, self.tvm_target())
        kernels = kernel_infos(lowered, {k: (c.knobs, c.origin) for k, c in chosen.items()})
        compiled = CompiledModel(executable.mod, request.program, dict(request.constants), kernels,
                                 dict(request.metadata), executable=executable)
        if not request.plan:
            return compiled
        from woodpecker.planner.planner import plan_model

        return plan_model(compiled, lowered, request.onnx_bytes, threads=self.threads, progress=request.progress)
