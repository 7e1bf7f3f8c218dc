"""Simulated kernel run: TVM object file + inputs -> output array, instruction counts, cycles and seconds.

The kernel object comes from `tvm.compile(mod, target=<profile target>).mod.write_to_file("k.o")`
(`build_kernel_object` does exactly that). It is linked with the freestanding harness and a generated data.S
holding the inputs, run under qemu with the counting plugin, and its counts go through the profile's cycle
model. Outputs are read back from the image's stdout, so a wrong kernel is caught by comparing them.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np

from woodpecker.errors import TargetError
from woodpecker.sim.riscv import image
from woodpecker.sim.riscv.cycle_model import CycleEstimate, CycleModel
from woodpecker.sim.riscv.qemu import SimCounts, SimulationError, run_image
from woodpecker.sim.riscv.toolchain import toolchain_for


@dataclasses.dataclass(frozen=True)
class SimResult:
    output: np.ndarray
    counts: Mapping[str, int]  # the measured region: instructions per class, vector beats, cache misses
    cycles: float  # estimated cycles on the profile's device (cluster: slowest core per parallel launch)
    seconds: float  # cycles / clock
    per_core_insns: tuple[int, ...] = ()  # instructions each core runs inside parallel loops
    per_core_cycles: tuple[float, ...] = ()
    sim_secs: float = 0.0  # host time qemu took
    raw: SimCounts | None = None  # per-region and per-task counts as the plugin reported them


def resolve_profile(profile):
    """A HardwareProfile, or a profile id/alias."""
    if isinstance(profile, str):
        from woodpecker.hw.profile import load_profile

        profile = load_profile(profile)
    if profile.kind not in ("riscv", "mcu"):
        raise TargetError(f"target {profile.id!r} ({profile.kind}) is not a simulated RISC-V target")
    return profile


def build_kernel_object(mod, profile, out_path: str | pathlib.Path) -> pathlib.Path:
    """Compile a scheduled IRModule for the profile's TVM target into an ELF relocatable object."""
    import tvm

    profile = resolve_profile(profile)
    ex = tvm.compile(mod, target=tvm.target.Target(dict(profile.target)))
    out = pathlib.Path(out_path)
    ex.mod.write_to_file(str(out))
    return out


def simulate_kernel(object_path: str | pathlib.Path, func_name: str, inputs: Sequence[np.ndarray],
                    out_shape: Sequence[int], out_dtype: str, profile, *, cache: bool = True,
                    timeout_s: float = 60.0, workdir: str | pathlib.Path | None = None) -> SimResult:
    """Run one kernel under qemu and estimate its time on the profile's device.

    Args:
        object_path: the kernel's object file, compiled for the profile's TVM target.
        func_name: the kernel's global symbol (the task name); the harness calls `__tvm_ffi_<func_name>`.
        inputs: the kernel's input arrays, in parameter order (the output buffer is added last).
        out_shape, out_dtype: the output buffer.
        profile: a HardwareProfile of kind riscv/mcu, or its id or alias.
        cache: simulate the profile's data caches (slower by about half; misses are then counted).
        timeout_s: host seconds before a hung kernel is killed.
        workdir: where to write data.S and the image (a temporary folder by default).

    Raises SimulationError when the kernel crashes, hangs or reports an error; TargetError when the toolchain
    is missing.
    """
    profile = resolve_profile(profile)
    model = CycleModel.from_profile(profile)
    tc = toolchain_for(profile)
    obj = pathlib.Path(object_path)
    if not obj.exists():
        raise SimulationError(f"kernel object {obj} does not exist")
    with tempfile.TemporaryDirectory(prefix="wp-sim-", dir=workdir) as tmp:
        work = pathlib.Path(tmp)
        data = image.kernel_data(work, inputs, [(tuple(out_shape), out_dtype)], func_name, model.cores, tc.xlen)
        elf = image.link(tc, [*image.harness_objects(tc, "kernel_main.c"), data, obj], work / "kernel.elf")
        run = run_image(elf, tc, model.plugin_options(cache), timeout_s)
    expected_bytes = int(np.prod(out_shape, dtype=np.int64)) * np.dtype(out_dtype).itemsize
    if len(run.stdout) != expected_bytes:
        raise SimulationError(f"kernel {func_name} wrote {len(run.stdout)} output bytes, expected {expected_bytes}")
    output = np.frombuffer(run.stdout, dtype=out_dtype).reshape(tuple(out_shape)).copy()
    est = model.estimate(run.counts)
    return _result(output, run.counts, est, run.wall_secs)


def _result(output: np.ndarray, counts: SimCounts, est: CycleEstimate, sim_secs: float) -> SimResult:
    return SimResult(output, counts.total(), est.cycles, est.seconds, est.per_core_insns, est.per_core_cycles,
                     sim_secs, counts)
