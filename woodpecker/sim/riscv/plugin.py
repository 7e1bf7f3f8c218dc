"""Counting plugin: plugin/rvcount.c -> librvcount.so, built with the host gcc on first use.

The shared object lives in the user cache (`<cache_dir>/sim/`) under the hash of its sources and build command,
so an edited plugin is rebuilt and concurrent workers never see a half-written file (build, then rename).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess

from woodpecker import config
from woodpecker.errors import TargetError
from woodpecker.sim.riscv.toolchain import host_cc

PLUGIN_DIR = pathlib.Path(__file__).resolve().parent / "plugin"
SOURCES = ("rvcount.c", "qemu_plugin_api.h")
CFLAGS = ("-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall")


def plugin_path() -> pathlib.Path:
    """Path of the built plugin (building it when this source has not been built yet)."""
    cc = host_cc()
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((PLUGIN_DIR / name).read_bytes())
    digest.update(" ".join((cc, *CFLAGS)).encode())
    out_dir = config.get().cache_dir / "sim"
    out = out_dir / f"librvcount-{digest.hexdigest()[:16]}.so"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    cmd = [cc, *CFLAGS, "-o", str(tmp), str(PLUGIN_DIR / "rvcount.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        first = (proc.stderr.strip().splitlines() or ["no output"])[0]
        raise TargetError(f"building the qemu counting plugin {PLUGIN_DIR / 'rvcount.c'} failed: {first}")
    os.replace(tmp, out)
    return out
