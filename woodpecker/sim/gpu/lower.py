"""Scheduled IRModule -> lowered device TIR (the kernels as TVM's CUDA code generator sees them), with no GPU
and no nvcc: TVM's default pipeline for a `cuda` target, split into host and device functions."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def cuda_target(arch: str, host: Mapping[str, Any] | None = None):
    import tvm

    return tvm.target.Target({"kind": "cuda", "arch": arch, "host": dict(host or {"kind": "llvm"})})


def lower_device(mod, arch: str = "sm_80"):
    """The device IRModule of a scheduled module: one PrimFunc per kernel launch, after every lowering pass
    (thread allreduce, virtual threads, storage rewrite, unrolling, CSE) that runs before CUDA code
    generation.

    Raises ValueError when the module has no device function (an unscheduled PrimFunc compiles to host code
    only).
    """
    import tvm

    build = importlib.import_module("tvm.tirx.build")  # the module; `tvm.tirx.build` is also the function
    target = cuda_target(arch)
    mod = tvm.tirx.transform.BindTarget(target.with_host(target.host))(mod)
    pipeline, _, finalize_device = tvm.tirx.get_default_tir_pipeline(target)
    with target:
        mod = pipeline(mod)
        _, devices = build.split_host_device_mods(mod)
        device_mods = [finalize_device()(m) for m in devices.values()]
    funcs = {}
    for m in device_mods:
        for gv, func in m.functions.items():
            funcs[gv.name_hint] = func
    if not funcs:
        raise ValueError("the module has no CUDA kernel (is it scheduled for a GPU?)")
    return tvm.IRModule({name: f for name, f in funcs.items()})
