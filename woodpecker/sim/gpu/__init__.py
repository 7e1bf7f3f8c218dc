"""Analytical GPU model: scheduled TIR -> device TIR -> KernelFeatures -> GpuEstimate (seconds per kernel).

`lower_device(mod, arch)` runs TVM's CUDA lowering without a GPU; `extract_module` reads launch dimensions,
memory access patterns and instruction counts from it; `estimate(features, profile, registers=None)` applies
the occupancy-aware roofline of `model.py` (formulas in its docstring). `GpuSimMeasurer` measures tuning
candidates with it. TVM is imported lazily: `import woodpecker.sim.gpu` does not load it.
"""

from woodpecker.sim.gpu.features import KernelFeatures, extract, extract_module
from woodpecker.sim.gpu.lower import lower_device
from woodpecker.sim.gpu.model import Efficiency, GpuDevice, GpuEstimate, GpuLaunchError, estimate

__all__ = [
    "Efficiency",
    "GpuDevice",
    "GpuEstimate",
    "GpuLaunchError",
    "KernelFeatures",
    "estimate",
    "extract",
    "extract_module",
    "lower_device",
]
