"""Target: a hardware profile resolved for compiling and tuning (pass options, schedules, spaces, measurement).

The one place that knows what differs between target classes:

    class  layout       schedules (templates)        measured by
    cpu    NCHW[b]c     woodpecker.schedule.cpu      real timing in an isolated worker (Measurer)
    riscv  NCHW[b]c     cpu templates, lanes = VLEN/32  qemu + counting plugin + cycle model (RiscvMeasurer)
    mcu    NCHW[b]c     cpu templates, scalar        as riscv, bare-metal rv32
    gpu    NCHW         woodpecker.schedule.gpu      real CUDA timing when a GPU is attached (CudaMeasurer),
                                                     else the analytical roofline (GpuSimMeasurer)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from woodpecker.errors import TargetError
from woodpecker.hw.profile import HardwareProfile, load_profile
from woodpecker.lowering.model import Task
from woodpecker.passes.pipeline import PassOptions
from woodpecker.records.schema import Device

CLASSES = ("cpu", "riscv", "mcu", "gpu")


@dataclasses.dataclass(frozen=True)
class Target:
    profile: HardwareProfile
    threads: int  # host threads (the cpu class) for kernels and measurement

    @property
    def target_class(self) -> str:
        return self.profile.target_class

    @property
    def is_host(self) -> bool:
        return self.target_class == "cpu"

    def pass_options(self, blocked_layout: bool | None = None) -> PassOptions:
        if self.target_class == "gpu":
            # the blocked layout and packed dense weights are CPU vector-register choices
            return PassOptions(blocked_layout=False if blocked_layout is None else blocked_layout, pack_dense=False)
        return PassOptions(blocked_layout=True if blocked_layout is None else blocked_layout)

    @property
    def lanes(self) -> int:
        """float32 lanes of a vector register (the `lanes` of search-space constraints)."""
        if self.is_host:
            from woodpecker.hw.host import detect

            return max(1, detect().vector_bits // 32)
        if self.target_class in ("riscv", "mcu"):
            from woodpecker.sim.riscv.schedules import vector_lanes

            return vector_lanes(self.profile)
        return 32  # a warp

    def tvm_target(self) -> dict[str, Any]:
        if self.is_host:
            from woodpecker.hw.host import target_dict

            return target_dict(self.threads)
        return dict(self.profile.target)

    def default_knobs(self, task: Task) -> dict[str, Any]:
        if self.target_class in ("riscv", "mcu"):
            from woodpecker.sim.riscv.schedules import default_knobs

            return default_knobs(task, self.profile)
        from woodpecker.schedule.apply import default_knobs

        return default_knobs(task, self.target_class)

    def space(self, task: Task):
        if self.target_class in ("riscv", "mcu"):
            from woodpecker.sim.riscv.schedules import space_for

            return space_for(task, self.profile)
        from woodpecker.space.space import space_for_task

        limits = self.profile.target if self.target_class == "gpu" else None
        return space_for_task(task, self.target_class, self.lanes, limits)

    @functools.cached_property
    def simulated(self) -> bool:
        """Whether measurements on this target are simulated here (recorded as such, never mixed with real)."""
        if self.target_class == "gpu":
            from woodpecker.measure.cuda import gpu_available

            return not gpu_available()
        return self.profile.simulated

    def device(self) -> Device:
        """The identity records are keyed to."""
        if self.is_host:
            from woodpecker.hw.identity import device_for

            return device_for(self.profile, self.threads)
        return Device(self.profile.id, self.profile.content_hash, "", self.simulated)

    def toolchain(self, options: Any = None) -> dict[str, str]:
        """The toolchain key of records measured here with these MeasureOptions (default: the configured ones).

        Only real CPU timing has a cold-cache mode; simulated cycle counts and CUDA event times do not change with
        the option, so their records keep one key whatever it says.
        """
        from woodpecker.hw.identity import toolchain
        from woodpecker.measure.measurer import MeasureOptions

        options = options or MeasureOptions()
        return toolchain(cold_cache=self.is_host and options.cold_cache)

    def record_toolchains(self) -> list[dict[str, str]]:
        """Toolchain keys whose records compile applies, preferred first: records timed the configured way, then
        those timed the other way, so a database tuned before the timing mode changed still serves. (GPU and
        simulated records were once tagged cold-cache too, under WOODPECKER_COLD_CACHE=1: the second key finds
        them.)"""
        from woodpecker.hw.identity import TIMING, toolchain
        from woodpecker.measure.measurer import MeasureOptions

        preferred = self.toolchain(MeasureOptions())
        other = toolchain(cold_cache=TIMING not in preferred)
        return [preferred, other]

    def measurer(self, build_workers: int | None = None, options: Any = None, toolchain: Mapping[str, str] | None = None):
        from woodpecker.measure.measurer import MeasureOptions, Measurer

        options = options or MeasureOptions()
        if self.is_host:
            return Measurer(self.tvm_target(), "cpu", build_workers, options, toolchain)
        if self.target_class in ("riscv", "mcu"):
            from woodpecker.sim.riscv.measurer import RiscvMeasurer

            return RiscvMeasurer(self.profile, build_workers, options, toolchain=toolchain)
        if not self.simulated:
            from woodpecker.measure.cuda import CudaMeasurer

            return CudaMeasurer(self.profile.target, build_workers, options)
        from woodpecker.sim.gpu.measurer import GpuSimMeasurer

        return GpuSimMeasurer(self.profile, build_workers, options)


def resolve(target: str | Target, threads: int | None = None) -> Target:
    if isinstance(target, Target):
        return target
    from woodpecker import config

    profile = load_profile(target)
    if profile.target_class not in CLASSES:
        raise TargetError(f"target {profile.id!r}: target class {profile.target_class!r} is not one of {CLASSES}")
    return Target(profile, threads or config.prepare_tvm_threads())
