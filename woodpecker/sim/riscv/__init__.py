"""RISC-V and MCU targets measured by simulation: TVM kernel objects run under qemu-user with a counting plugin.

    simulate_kernel(object_path, func_name, inputs, out_shape, out_dtype, profile) -> SimResult
    RiscvMeasurer(profile)                  the Measurer interface (set_reference / measure / measure_many / close)
    run_model(program, constants, objects, inputs, profile) -> ModelRunResult
    write_model_sources(program, constants, out_dir)         model.c / model.h / weights.S for firmware

Needs the Debian packages listed in toolchain.APT_PACKAGES (cross gcc, qemu-user); a missing one is a TargetError.
"""

from woodpecker.sim.riscv.kernel import SimResult, build_kernel_object, simulate_kernel
from woodpecker.sim.riscv.measurer import RiscvMeasurer
from woodpecker.sim.riscv.model import ModelRunResult, build_kernel_objects, run_model, write_model_sources
from woodpecker.sim.riscv.qemu import SimulationError

__all__ = [
    "ModelRunResult",
    "RiscvMeasurer",
    "SimResult",
    "SimulationError",
    "build_kernel_object",
    "build_kernel_objects",
    "run_model",
    "simulate_kernel",
    "write_model_sources",
]
