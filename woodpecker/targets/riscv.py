"""RISC-V cores (rv64 with or without the vector extension) and MCUs (bare-metal rv32): the CPU templates with
lanes = VLEN/32 (scalar on an MCU), one object file per kernel, measured and run under qemu-user with the counting
plugin and the profile's cycle model (woodpecker.sim.riscv)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from woodpecker.targets import BuildRequest, Target


class RiscvTarget(Target):
    @property
    def lanes(self) -> int:
        from woodpecker.sim.riscv.schedules import vector_lanes

        return vector_lanes(self.profile)

    def default_knobs(self, task) -> dict[str, Any]:
        from woodpecker.sim.riscv.schedules import default_knobs

        return default_knobs(task, self.profile)

    def space(self, task):
        from woodpecker.sim.riscv.schedules import space_for

        return space_for(task, self.profile)

    def measurer(self, build_workers: int | None = None, options: Any = None,
                 toolchain: Mapping[str, str] | None = None):
        from woodpecker.measure.measurer import MeasureOptions
        from woodpecker.sim.riscv.measurer import RiscvMeasurer

        return RiscvMeasurer(self.profile, build_workers, options or MeasureOptions(), toolchain=toolchain)

    def build(self, request: BuildRequest):
        """One object file per kernel for the profile's target; the model runs under qemu (SimulatedModel). Vendor
        libraries do not run on these cores: nothing is planned."""
        from woodpecker import config
        from woodpecker.lowering.to_runtime import kernel_infos
        from woodpecker.runtime.simulated import SimulatedModel
        from woodpecker.sim.riscv.model import build_kernel_objects

        lowered = request.lowered
        out_dir = config.get().cache_dir / "objects" / "build" / f"{self.profile.id}-{os.getpid()}-{id(lowered)}"
        objects = build_kernel_objects(lowered.tasks, self.profile, out_dir, request.knobs)
        kernels = kernel_infos(lowered, {k: (o.knobs, o.origin) for k, o in objects.items()})
        by_name = {o.name: o.path for o in objects.values()}
        return SimulatedModel(request.program, dict(request.constants), kernels, dict(request.metadata), by_name,
                              self.profile.id, request.onnx_bytes)
