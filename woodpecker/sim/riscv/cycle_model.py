"""Cycle model: simulated counts (instruction classes, cache misses, per-core task counts) -> cycles -> seconds.

The numbers come from the profile file (hw_profiles/<id>.toml), each with its source:

    cost(class)  = max(1 / issue_width, occupancy_cycles[class]) + stall_fraction * (latency_cycles[class] - 1)
    cycles(core) = sum(count[class] * cost(class))                      # every executed instruction
                 + v_lmul_weighted * (VLEN / DLEN)                      # vector datapath beats
                 + l1_misses * l1_miss_cycles + l2_misses * l2_miss_cycles

`occupancy_cycles` is how long a class keeps its unit busy (non-pipelined dividers; 1 otherwise); `latency_cycles`
is its result latency; `stall_fraction` is the share of that extra latency an in-order pipeline does not hide
behind independent instructions (an estimate: the model does not track dependencies). A vector instruction
touching LMUL registers on a core whose datapath is DLEN bits wide needs LMUL * VLEN / DLEN beats.

A measured region runs its serial code on one core; each parallel launch costs the slowest of its cores (tasks
are assigned round-robin, task i on core i mod cores) plus `parallel_launch_cycles` of fork/join overhead:

    cycles(region) = cycles(region counts - task counts) + sum over launches of
                     (max over cores of sum of cycles(task on that core)) + launches * parallel_launch_cycles
    seconds = cycles / clock_hz
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from woodpecker.errors import TargetError
from woodpecker.sim.riscv.qemu import CLASSES, COUNTER_NAMES, SimCounts

_TABLES = ("clock", "pipeline", "latency_cycles", "cores", "vector", "memory")


@dataclasses.dataclass(frozen=True)
class CacheGeometry:
    line_bytes: int
    l1_bytes: int
    l1_assoc: int
    l1_shared: bool  # one L1 for all cores (a cluster's shared scratchpad) rather than one per core
    l2_bytes: int  # 0: no L2 (an L1 miss goes to main memory)
    l2_assoc: int


@dataclasses.dataclass(frozen=True)
class CycleEstimate:
    cycles: float  # the whole measured run on the modelled device
    seconds: float
    serial_cycles: float  # code outside parallel launches
    per_core_cycles: tuple[float, ...]  # cycles each core spends in parallel tasks (summed over launches)
    per_core_insns: tuple[int, ...]  # instructions each core executes in parallel tasks
    launches: int  # parallel launches


@dataclasses.dataclass(frozen=True)
class CycleModel:
    profile_id: str
    clock_hz: float
    issue_width: float
    stall_fraction: float
    latency_cycles: Mapping[str, float]  # per instruction class
    occupancy_cycles: Mapping[str, float]  # per instruction class (1 when not listed)
    vlen_bits: int  # 0: no vector unit
    dlen_bits: int
    cores: int
    parallel_launch_cycles: float
    cache: CacheGeometry | None  # None: no data cache is modelled (tightly coupled memory)
    l1_miss_cycles: float
    l2_miss_cycles: float

    @staticmethod
    def from_profile(profile) -> CycleModel:
        p = profile.params
        where = f"hardware profile {profile.source}"
        for table in _TABLES:
            if not isinstance(p.get(table), Mapping):
                raise TargetError(f"{where}: missing table [{table}] (needed by the RISC-V cycle model)")
        lat = p["latency_cycles"]
        missing = [c for c in CLASSES if c not in lat]
        if missing:
            raise TargetError(f"{where}: [latency_cycles] has no entry for class '{missing[0]}'")
        mem = p["memory"]
        vec = p["vector"]
        cache = None
        if int(_num(mem, "l1d_bytes", where, 0)) > 0:
            cache = CacheGeometry(
                line_bytes=int(_num(mem, "line_bytes", where)),
                l1_bytes=int(_num(mem, "l1d_bytes", where)),
                l1_assoc=int(_num(mem, "l1d_assoc", where)),
                l1_shared=bool(mem.get("l1_shared", False)),
                l2_bytes=int(_num(mem, "l2_bytes", where, 0)),
                l2_assoc=int(_num(mem, "l2_assoc", where, 1)),
            )
        vlen = int(_num(vec, "vlen_bits", where, 0))
        return CycleModel(
            profile_id=profile.id,
            clock_hz=float(_num(p["clock"], "hz", where)),
            issue_width=float(_num(p["pipeline"], "issue_width", where)),
            stall_fraction=float(_num(p["pipeline"], "stall_fraction", where)),
            latency_cycles={c: float(_num(lat, c, where)) for c in CLASSES},
            occupancy_cycles={c: float(v) for c, v in p.get("occupancy_cycles", {}).items() if c in CLASSES},
            vlen_bits=vlen,
            dlen_bits=int(_num(vec, "dlen_bits", where, vlen)) if vlen else 0,
            cores=max(1, int(_num(p["cores"], "count", where))),
            parallel_launch_cycles=float(_num(p["cores"], "parallel_launch_cycles", where, 0)),
            cache=cache,
            l1_miss_cycles=float(_num(mem, "l1_miss_cycles", where, 0)),
            l2_miss_cycles=float(_num(mem, "l2_miss_cycles", where, 0)),
        )

    # -- per class -------------------------------------------------------------------------------------------
    def class_cost(self, cls: str) -> float:
        """Cycles one instruction of `cls` costs on average (see the module docstring)."""
        issue = max(1.0 / self.issue_width, self.occupancy_cycles.get(cls, 1.0 / self.issue_width))
        return issue + self.stall_fraction * max(0.0, self.latency_cycles[cls] - 1.0)

    def cycles(self, counts: Mapping[str, int]) -> float:
        """Cycles of one core executing `counts`."""
        total = sum(counts.get(c, 0) * self.class_cost(c) for c in CLASSES)
        if self.vlen_bits:
            total += counts.get("v_lmul_weighted", 0) * (self.vlen_bits / self.dlen_bits)
        total += counts.get("l1_misses", 0) * self.l1_miss_cycles + counts.get("l2_misses", 0) * self.l2_miss_cycles
        return float(total)

    # -- a whole run -----------------------------------------------------------------------------------------
    def estimate(self, counts: SimCounts) -> CycleEstimate:
        serial = 0.0
        parallel = 0.0
        per_core = [0.0] * self.cores
        per_core_insns = [0] * self.cores
        launches: dict[tuple[int, int], dict[int, float]] = {}
        for r, region in enumerate(counts.regions):
            outside = dict(region)
            for t in counts.tasks:
                if t.region != r:
                    continue
                for k in COUNTER_NAMES:
                    outside[k] -= t.counts.get(k, 0)
                core = t.task % self.cores
                c = self.cycles(t.counts)
                by_core = launches.setdefault((r, t.launch), {})
                by_core[core] = by_core.get(core, 0.0) + c
                per_core[core] += c
                per_core_insns[core] += t.counts.get("insns", 0)
            serial += self.cycles(outside)
        for by_core in launches.values():
            parallel += max(by_core.values()) + self.parallel_launch_cycles
        total = serial + parallel
        return CycleEstimate(total, total / self.clock_hz, serial, tuple(per_core), tuple(per_core_insns),
                             len(launches))

    def plugin_options(self, cache: bool = True) -> dict[str, int]:
        """Options of the counting plugin that simulate this profile's caches and cores."""
        opts = {"cores": self.cores}
        if cache and self.cache is not None:
            g = self.cache
            opts.update(cache=1, line=g.line_bytes, l1=g.l1_bytes, l1_assoc=g.l1_assoc, l1_shared=int(g.l1_shared),
                        l2=g.l2_bytes, l2_assoc=g.l2_assoc)
        return opts


def _num(table: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    if key not in table:
        if default is None:
            raise TargetError(f"{where}: missing field '{key}'")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise TargetError(f"{where}: field '{key}' must be a non-negative number, got {value!r}")
    return value
