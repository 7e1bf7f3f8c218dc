"""Toolchain: hardware profile -> the cross compiler, flags and qemu binary that build and run its images.

rv64 profiles link freestanding static ELFs with riscv64-linux-gnu-gcc and run them under qemu-riscv64; rv32
profiles (MCUs) use the bare-metal riscv64-unknown-elf-gcc (its rv32 multilibs) and qemu-riscv32 in user mode,
which needs nothing from the image but the write and exit system calls. A missing tool is a TargetError naming
the Debian packages that provide it.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from woodpecker.errors import TargetError

APT_PACKAGES = ("gcc-riscv64-linux-gnu libc6-dev-riscv64-cross binutils-riscv64-linux-gnu qemu-user "
                "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf")

PICOLIBC_LIB = pathlib.Path("/usr/lib/picolibc/riscv64-unknown-elf/lib")

# Flags for the harness, the runtime shims and the generated model C: no libc, and no calls to memcpy/memset
# that gcc would otherwise synthesise from the runtime's own copy loops.
COMMON_CFLAGS = ("-O2", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns", "-fno-common")


@dataclasses.dataclass(frozen=True)
class Toolchain:
    xlen: int  # 32 or 64
    cc: str  # cross gcc (absolute path)
    march: str  # -march of the harness (the kernel objects carry their own attributes)
    mabi: str
    qemu: str  # qemu-riscv32 / qemu-riscv64 (absolute path)
    qemu_cpu: str  # -cpu argument: "rv64,v=true,vlen=128,elen=64"
    libc_dir: str | None = None  # picolibc multilib folder: libm routines a kernel may call (sqrtf without F)

    @property
    def cflags(self) -> tuple[str, ...]:
        return (*COMMON_CFLAGS, f"-march={self.march}", f"-mabi={self.mabi}")

    @property
    def link_flags(self) -> tuple[str, ...]:
        extra = ("-no-pie",) if self.xlen == 64 else ()
        return ("-nostdlib", "-static", *extra, f"-march={self.march}", f"-mabi={self.mabi}")

    def key(self) -> str:
        """Identity of the generated code (for build caches)."""
        return f"{self.cc}|{self.march}|{self.mabi}"


def _which(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TargetError(f"RISC-V simulation needs {name} (Debian package {package}); install with: "
                          f"apt-get install {APT_PACKAGES}")
    return path


def sim_params(profile) -> Mapping[str, Any]:
    """The [sim] table of a RISC-V/MCU profile (a TargetError for a profile without one)."""
    sim = profile.params.get("sim")
    if not isinstance(sim, Mapping) or not {"xlen", "march", "mabi", "qemu_cpu"} <= set(sim):
        raise TargetError(f"hardware profile {profile.source}: a simulated RISC-V profile needs a [sim] table "
                          f"with xlen, march, mabi and qemu_cpu")
    return sim


def toolchain_for(profile) -> Toolchain:
    sim = sim_params(profile)
    xlen = int(sim["xlen"])
    if xlen not in (32, 64):
        raise TargetError(f"hardware profile {profile.source}: sim.xlen must be 32 or 64, got {xlen}")
    return _toolchain(xlen, str(sim["march"]), str(sim["mabi"]), str(sim["qemu_cpu"]))


@functools.lru_cache(maxsize=16)
def _toolchain(xlen: int, march: str, mabi: str, qemu_cpu: str) -> Toolchain:
    if xlen == 64:
        cc = _which("riscv64-linux-gnu-gcc", "gcc-riscv64-linux-gnu")
        qemu = _which("qemu-riscv64", "qemu-user")
    else:
        cc = _which("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf")
        qemu = _which("qemu-riscv32", "qemu-user")
    return Toolchain(xlen, cc, march, mabi, qemu, qemu_cpu, _picolibc_dir(march, mabi))


def _picolibc_dir(march: str, mabi: str) -> str | None:
    """picolibc's library folder for this ISA (None when picolibc is not installed).

    A kernel for a core without F calls libm for what the FPU would do (sqrtf in a layer norm); picolibc is
    built for bare metal, so its objects link into the freestanding images of both the rv32 and rv64 harness.
    """
    elf_gcc = shutil.which("riscv64-unknown-elf-gcc")
    if elf_gcc is None or not PICOLIBC_LIB.is_dir():
        return None
    proc = subprocess.run([elf_gcc, f"-march={march}", f"-mabi={mabi}", "-print-multi-directory"],
                          capture_output=True, text=True)
    folder = PICOLIBC_LIB / proc.stdout.strip()
    return str(folder) if proc.returncode == 0 and (folder / "libc.a").exists() else None


def host_cc() -> str:
    """The host C compiler that builds the qemu plugin."""
    for name in ("gcc", "cc"):
        path = shutil.which(name)
        if path is not None:
            return path
    raise TargetError("RISC-V simulation needs a host C compiler (gcc) to build its qemu plugin; "
                      "install with: apt-get install gcc")
