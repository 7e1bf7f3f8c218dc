"""Each tier of the simulation tests skips only what needs a missing tool: without the RISC-V toolchains and
qemu, the GPU-simulator and profile tests still run, and the RISC-V simulations say what to install."""

from __future__ import annotations

import os
import re
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def test_without_riscv_tools_only_the_riscv_simulations_are_skipped(tmp_path):
    # a PATH with the Python interpreter only: no cross compilers, no qemu, no gcc
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         str(HERE / "test_gpu_profiles.py"), str(HERE / "test_riscv_plugin.py")],
        capture_output=True, text=True, env=env, cwd=HERE.parent.parent, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) > 0, out[-3000:]  # test_gpu_profiles.py ran
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all("test_riscv_plugin.py" in line and "needs riscv64-linux-gnu-gcc" in line
                           and "apt-get install" in line for line in skipped), out[-3000:]
