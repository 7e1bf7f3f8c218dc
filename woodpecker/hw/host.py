"""The host CPU, detected at run time: the LLVM target TVM should compile for, cores, ISA features, caches."""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import platform


@dataclasses.dataclass(frozen=True)
class HostCPU:
    mcpu: str  # LLVM CPU name, e.g. "znver3"
    triple: str
    cores: int  # logical CPUs this process may use
    features: tuple[str, ...]  # selected ISA features (avx2, fma, avx512f, neon...)
    l1d_bytes: int | None
    l2_bytes: int | None
    l3_bytes: int | None
    model_name: str

    @property
    def vector_bits(self) -> int:
        if "avx512f" in self.features:
            return 512
        if "avx2" in self.features or "avx" in self.features:
            return 256
        return 128

    @property
    def vector_registers(self) -> int:
        """Architectural vector registers: 32 with AVX-512 (zmm0-31) and on AArch64 (v0-v31), 16 with AVX/AVX2."""
        if "avx512f" in self.features or "neon" in self.features or "sve" in self.features:
            return 32
        return 16

    @property
    def fma_per_cycle(self) -> int:
        """FP32 FMA instructions issued per cycle per core (2 on AVX2 server cores, znver/skylake)."""
        return 2 if "fma" in self.features else 1


def _cache_size(index: int) -> int | None:
    path = pathlib.Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size")
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    mult = {"K": 1024, "M": 1024 * 1024}.get(text[-1], 1)
    return int(text.rstrip("KM")) * mult


def _model_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def detect() -> HostCPU:
    import tvm
    from tvm.target import codegen

    mcpu = codegen.llvm_get_system_cpu()
    triple = codegen.llvm_get_system_triple()
    target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu})
    try:
        feats = set(codegen.llvm_get_cpu_features(target))
    except Exception:
        feats = set()
    wanted = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vnni", "neon", "sve", "v")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return HostCPU(
        mcpu=mcpu,
        triple=triple,
        cores=cores,
        features=tuple(f for f in wanted if f in feats),
        l1d_bytes=_cache_size(0),
        l2_bytes=_cache_size(2),
        l3_bytes=_cache_size(3),
        model_name=_model_name(),
    )


def target_dict(num_threads: int | None = None) -> dict:
    """TVM target description for this CPU. The explicit mcpu matters: without it LLVM emits SSE2 code (2.7x
    slower); `num-cores` is the thread count the kernels are built for."""
    host = detect()
    return {"kind": "llvm", "mcpu": host.mcpu, "num-cores": int(num_threads or host.cores)}


def llvm_target(num_threads: int | None = None):
    import tvm

    return tvm.target.Target(target_dict(num_threads))
