"""Target: a hardware profile resolved for compiling and tuning. Each target class is one module here that supplies
what differs between classes; this module holds what they share and the registry that picks one:

    class      module     layout     schedules (templates)           measured by                 build
    cpu        cpu.py     NCHW[b]c   woodpecker.schedule.cpu         real timing, isolated worker  one host library,
                                                                                                    then the planner
    riscv/mcu  riscv.py   NCHW[b]c   cpu templates, lanes = VLEN/32  qemu + counting plugin +      one object per
                                     (mcu: scalar)                   cycle model                   kernel (firmware)
    gpu        gpu.py     NCHW       woodpecker.schedule.gpu         CUDA events when a GPU is     one CUDA library,
                                                                     attached, else the roofline   planned on a GPU

Adding a target class: a module here with a `Target` subclass (its build, measurer, search space and schedule
defaults), its name in `CLASSES`, a hardware profile (hw_profiles/) and its search-space files
(search_spaces/<class>/). Nothing else changes: `woodpecker.api.compile` calls `Target.build`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from woodpecker.errors import TargetError
from woodpecker.hw.profile import HardwareProfile, load_profile
from woodpecker.passes.pipeline import PassOptions
from woodpecker.records.schema import Device

if TYPE_CHECKING:
    from woodpecker.lowering.model import LoweredModel, Task
    from woodpecker.runtime.compiled import CompiledModel

# target class -> "module:class" (imported when a profile of that class is resolved)
CLASSES: dict[str, str] = {
    "cpu": "woodpecker.targets.cpu:CpuTarget",
    "riscv": "woodpecker.targets.riscv:RiscvTarget",
    "mcu": "woodpecker.targets.riscv:RiscvTarget",
    "gpu": "woodpecker.targets.gpu:GpuTarget",
}


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """What a target's build receives from `compile`: the model lowered once, the knobs chosen from the records,
    and the runtime program lowering made of it."""

    lowered: LoweredModel
    knobs: Mapping[str, Mapping[str, int | str]]
    program: Any  # woodpecker.runtime.executor.Program
    constants: Mapping[str, np.ndarray]
    metadata: Mapping[str, Any]
    onnx_bytes: bytes  # the model as imported (the planner's vendor regions and the simulator keep it)
    plan: bool  # time vendor libraries per call and whole-model, ship the fastest (where the target can)
    progress: Callable[[str], None] = lambda msg: None


@dataclasses.dataclass(frozen=True)
class Target:
    """A resolved target. Subclasses (one per target class) override what differs; see the module's table."""

    profile: HardwareProfile
    threads: int  # host threads (the cpu class) for kernels and measurement

    @property
    def target_class(self) -> str:
        return self.profile.target_class

    @property
    def is_host(self) -> bool:
        return self.target_class == "cpu"

    # --- what each class supplies ---------------------------------------------------------------------------

    def pass_options(self, blocked_layout: bool | None = None) -> PassOptions:
        return PassOptions(blocked_layout=True if blocked_layout is None else blocked_layout)

    @property
    def lanes(self) -> int:
        """float32 lanes of a vector register (the `lanes` of search-space constraints)."""
        raise NotImplementedError

    def tvm_target(self) -> dict[str, Any]:
        return dict(self.profile.target)

    def default_knobs(self, task: Task) -> dict[str, Any]:
        from woodpecker.schedule.apply import default_knobs

        return default_knobs(task, self.target_class)

    def space(self, task: Task):
        from woodpecker.space.space import space_for_task

        return space_for_task(task, self.target_class, self.lanes)

    @functools.cached_property
    def simulated(self) -> bool:
        """Whether measurements on this target are simulated here (recorded as such, never mixed with real)."""
        return self.profile.simulated

    def device(self) -> Device:
        """The identity records are keyed to."""
        return Device(self.profile.id, self.profile.content_hash, "", self.simulated)

    def measurer(self, build_workers: int | None = None, options: Any = None,
                 toolchain: Mapping[str, str] | None = None):
        """The measurer the tuner times candidates with on this target."""
        raise NotImplementedError

    def build(self, request: BuildRequest) -> CompiledModel:
        """The runnable model: every task built with its knobs (or its default schedule), planned if asked."""
        raise NotImplementedError

    def building_message(self, kernels: int) -> str:
        return f"building {kernels} kernels for {self.profile.id}{' (simulated measurement)' if self.simulated else ''}"

    def describe(self) -> dict[str, Any]:
        """The target as the artifact's metadata records it."""
        return {"profile": self.profile.id, "profile_hash": self.profile.content_hash, "class": self.target_class,
                "measurement": "simulated" if self.simulated else "real"}

    # --- shared ---------------------------------------------------------------------------------------------

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


def target_type(target_class: str) -> type[Target]:
    module, _, name = CLASSES[target_class].partition(":")
    return getattr(importlib.import_module(module), name)


def resolve(target: str | Target, threads: int | None = None) -> Target:
    if isinstance(target, Target):
        return target
    from woodpecker import config

    profile = load_profile(target)
    if profile.target_class not in CLASSES:
        raise TargetError(f"target {profile.id!r}: target class {profile.target_class!r} is not one of "
                          f"{tuple(CLASSES)}")
    return target_type(profile.target_class)(profile, threads or config.prepare_tvm_threads())
