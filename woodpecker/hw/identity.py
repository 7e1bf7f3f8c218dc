"""Identities that key tuning records: the device a record was measured on and the toolchain that built it."""

from __future__ import annotations

from collections.abc import Mapping

from woodpecker.hw.profile import HardwareProfile
from woodpecker.records.schema import Device

# Bumped whenever a schedule template changes what a knob means: older records then no longer apply.
SCHEDULE_VERSION = "2"  # 2: a non-dividing lane tile of a batched matmul is padded; row reductions into per-lane partials
TIMING = "timing"  # the toolchain entry that says how records were timed, where that changes the time


def device_for(profile: HardwareProfile, threads: int | None = None) -> Device:
    if profile.kind == "cpu" and profile.id == "host":
        from woodpecker.hw.host import detect

        host = detect()
        detail = f"{host.mcpu}/{threads or host.cores}t"
    else:
        detail = ""
    return Device(profile.id, profile.content_hash, detail, profile.simulated)


def toolchain(cold_cache: bool = False) -> dict[str, str]:
    """Versions that built a record, and how it was timed where that changes the time (Target.toolchain decides)."""
    import tvm

    from woodpecker.version import __version__

    tools = {"woodpecker": __version__, "tvm": tvm.__version__, "schedules": SCHEDULE_VERSION}
    if cold_cache:
        # cold-cache times are not comparable with hot-loop times: their records are kept apart
        tools[TIMING] = "cold-cache"
    return tools


def build_toolchain(tools: Mapping[str, str] | None) -> dict[str, str]:
    """The part of a records' toolchain that decides what is built: how a candidate is timed does not, so hot and
    cold sessions share compiled objects."""
    return {k: v for k, v in (tools or {}).items() if k != TIMING}
