"""Simulated run: ELF image -> qemu-user with the counting plugin -> stdout bytes + per-region, per-task counts.

Counts are exact and deterministic (the same image gives the same numbers on every run): they come from the
plugin's decode of every executed translation block, between the harness's marker system calls.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import time
from collections.abc import Mapping, Sequence

from woodpecker.errors import WoodpeckerError
from woodpecker.sim.riscv.plugin import plugin_path
from woodpecker.sim.riscv.toolchain import Toolchain

COUNTER_NAMES = (
    "insns", "rvc", "alu", "mul", "div", "load", "store", "fload", "fstore", "fp", "fma", "fdiv", "branch", "sys",
    "vset", "vload", "vstore", "vmem_strided_indexed", "varith", "vfma", "v_lmul_weighted",
    "mem_reads", "mem_writes", "l1_misses", "l2_misses",
)
# The instruction classes (every executed instruction is in exactly one); the rest are derived counters.
CLASSES = COUNTER_NAMES[2:20]


class SimulationError(WoodpeckerError):
    """A simulated run failed: the image crashed, hung, or its kernel reported an error."""


@dataclasses.dataclass(frozen=True)
class TaskCounts:
    region: int  # index of the measured region the task ran in
    launch: int  # parallel launch (counted from 0 over the whole run)
    task: int  # task id within the launch (= the core it runs on)
    counts: Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class SimCounts:
    regions: tuple[Mapping[str, int], ...]  # counts of each measured region, in order
    tasks: tuple[TaskCounts, ...]  # counts of each task of each parallel launch
    cache_model: bool  # whether memory accesses and misses were simulated

    def total(self) -> dict[str, int]:
        out = dict.fromkeys(COUNTER_NAMES, 0)
        for r in self.regions:
            for k, v in r.items():
                out[k] += v
        return out

    def to_json(self) -> dict:
        return {"regions": [dict(r) for r in self.regions],
                "tasks": [{"region": t.region, "launch": t.launch, "task": t.task, "counts": dict(t.counts)}
                          for t in self.tasks],
                "cache_model": self.cache_model}


@dataclasses.dataclass(frozen=True)
class QemuRun:
    stdout: bytes
    counts: SimCounts
    wall_secs: float  # host time of the qemu process


def parse_counts(path: pathlib.Path) -> SimCounts:
    data = json.loads(path.read_text())
    names = data["names"]
    if tuple(names) != COUNTER_NAMES:
        raise SimulationError(f"counting plugin output {path.name} has counters {names}, "
                              f"expected {list(COUNTER_NAMES)}")

    def named(values: Sequence[int]) -> dict[str, int]:
        return dict(zip(names, (int(v) for v in values)))

    tasks = tuple(TaskCounts(int(t["region"]), int(t["launch"]), int(t["task"]), named(t["counts"]))
                  for t in data["tasks"])
    return SimCounts(tuple(named(r) for r in data["regions"]), tasks, bool(data["cache"]))


def run_image(elf: pathlib.Path, tc: Toolchain, plugin_options: Mapping[str, int],
              timeout_s: float = 60.0) -> QemuRun:
    """Run `elf` under qemu with the counting plugin; raises SimulationError when the image fails."""
    plugin = plugin_path()
    out_json = elf.with_suffix(".counts.json")
    out_json.unlink(missing_ok=True)
    opts = [f"out={out_json}", *[f"{k}={int(v)}" for k, v in plugin_options.items()]]
    if any("," in o for o in opts):
        raise SimulationError(f"the simulation work directory {elf.parent} contains a comma, which qemu's "
                              f"-plugin option cannot pass")
    cmd = [tc.qemu, "-cpu", tc.qemu_cpu, "-plugin", f"{plugin}," + ",".join(opts), str(elf)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SimulationError(f"simulation of {elf.name} did not finish within {timeout_s:g} s") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = err[0] if err else f"exit status {proc.returncode}"
        raise SimulationError(f"simulated run of {elf.name} failed ({reason})")
    if not out_json.exists():
        raise SimulationError(f"the counting plugin wrote no counts for {elf.name}")
    return QemuRun(proc.stdout, parse_counts(out_json), wall)
