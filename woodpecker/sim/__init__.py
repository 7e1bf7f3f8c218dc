"""Simulated measurement: targets woodpecker cannot run on natively are measured by simulation.

`woodpecker.sim.riscv`: RISC-V Linux-class cores and MCUs, run under qemu-user with an instruction-counting
plugin; a per-profile cycle model turns the counts into cycles.
"""
