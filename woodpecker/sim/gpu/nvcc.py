"""Generated CUDA source -> NvccResult: does nvcc accept it, and how many registers ptxas gives each kernel.

CUDA 13's nvcc compiles for sm_75 and newer only; older targets (sm_60, sm_70) are compiled for sm_75 as a
proxy (`proxy_arch`): the source TVM generates for them is the same, but register counts are those of sm_75.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping

OLDEST_SUPPORTED = 75  # CUDA 13 dropped sm_5x, sm_6x and sm_70/72


@dataclasses.dataclass(frozen=True)
class NvccResult:
    ok: bool
    arch: str  # the architecture actually compiled for
    registers: Mapping[str, int]  # kernel name -> registers per thread (ptxas)
    spill_bytes: Mapping[str, int]  # kernel name -> spill stores + loads (bytes)
    log: str  # nvcc's messages (the error when not ok)
    seconds: float


def nvcc_path() -> str | None:
    return shutil.which("nvcc")


def proxy_arch(arch: str) -> str:
    """The architecture nvcc compiles for in place of `arch` (sm_75 for anything older)."""
    m = re.fullmatch(r"sm_(\d+)([a-z]?)", arch)
    if not m:
        raise ValueError(f"not a CUDA architecture: {arch!r}")
    return arch if int(m.group(1)) >= OLDEST_SUPPORTED else f"sm_{OLDEST_SUPPORTED}"


def compile_source(source: str, arch: str = "sm_75", timeout_s: float = 120.0) -> NvccResult:
    """Compile CUDA source to a cubin with ptxas verbose output. Raises FileNotFoundError without nvcc."""
    import time

    nvcc = nvcc_path()
    if nvcc is None:
        raise FileNotFoundError("nvcc is not on the PATH")
    target = proxy_arch(arch)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="woodpecker-nvcc-") as d:
        src = os.path.join(d, hashlib.sha256(source.encode()).hexdigest()[:16] + ".cu")
        with open(src, "w") as f:
            f.write(source)
        cmd = [nvcc, f"-arch={target}", "-cubin", "-Xptxas", "-v", "-o", src + ".cubin", src]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return NvccResult(
                False, target, {}, {}, f"nvcc timed out after {timeout_s:.0f} s", time.perf_counter() - t0
            )
    log = (r.stdout + r.stderr).strip()
    regs, spills = parse_ptxas(log)
    return NvccResult(r.returncode == 0, target, regs, spills, log, time.perf_counter() - t0)


def parse_ptxas(log: str) -> tuple[dict[str, int], dict[str, int]]:
    """Registers and spill bytes per kernel from `ptxas -v` output."""
    regs: dict[str, int] = {}
    spills: dict[str, int] = {}
    current = None
    for line in log.splitlines():
        m = re.search(r"(?:Compiling entry function|Function properties for) '?([A-Za-z_][\w$]*)'?", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current:
            spills[current] = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and current:
            regs[current] = int(m.group(1))
    return regs, spills
