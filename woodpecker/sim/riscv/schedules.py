"""Schedules for RISC-V/MCU profiles: task + profile -> default knobs and search space sized to its register file.

RISC-V targets reuse the CPU schedule templates (target classes "riscv" and "mcu"); only the register file
differs: `lanes` is VLEN/32 on RVV cores and 1 on scalar ones, and the register tile holds half the register
file in accumulators (the rule measured on AVX2 in woodpecker.schedule.cpu_defaults.default_knobs), leaving the rest for
operands: 16 of 32 vector registers on RVV, 16 of 32 FP registers on scalar cores.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from woodpecker.sim.riscv.kernel import resolve_profile
from woodpecker.sim.riscv.toolchain import sim_params


def vector_lanes(profile) -> int:
    """float32 lanes of one vector register (1 on cores without the V extension); profile: object or id."""
    return max(1, int(sim_params(resolve_profile(profile)).get("vector_lanes", 1)))


def accumulator_budget(profile) -> int:
    """Registers the default register tile may fill with accumulators."""
    sim = sim_params(resolve_profile(profile))
    if vector_lanes(profile) > 1:
        registers = int(sim.get("vector_registers", 32))
    else:
        # without an FPU (soft-float) values live in the integer registers; 32 either way on RV32/RV64
        registers = int(sim.get("fp_registers", 0)) or 32
    return max(1, registers // 2)


def default_knobs(task, profile) -> dict[str, Any]:
    """The untuned schedule of `task` on `profile`."""
    from woodpecker.schedule import cpu_defaults
    from woodpecker.schedule.structure import analyze

    return cpu_defaults.default_knobs(task.family, analyze(task.kernel), vector_lanes(profile), accumulator_budget(profile))


def space_for(task, profile):
    """The task's search space for the profile's target class, with the profile's lanes and default knobs."""
    from woodpecker.space.space import Knob, space_for_task

    profile = resolve_profile(profile)
    space = space_for_task(task, profile.target_class, vector_lanes(profile))
    default = {**space.default, **default_knobs(task, profile)}
    knobs = []
    for k in space.knobs:
        missing = k.name in default and default[k.name] not in k.values
        values = (*k.values, default[k.name]) if missing else k.values
        knobs.append(Knob(k.name, tuple(values), k.doc))
    return dataclasses.replace(space, knobs=tuple(knobs), default=default)
