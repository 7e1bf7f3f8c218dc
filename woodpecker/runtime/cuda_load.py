"""Loading a GPU artifact's CUDA source with the TVM runtime alone.

A GPU machine that only runs prebuilt artifacts (the device kit, woodpecker.devicekit) has neither the lowering
nor the DSL parser (lark), so these helpers need only tvm's runtime; the tuner's woodpecker.measure.cuda imports
them from here (never the other way), so tuning and loading compile and cache device code the same way.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil

_CALLBACK: dict[str, str] = {}  # the compile callback installed in this process: binary dir, compiler, arch


def cuda_compiler() -> str | None:
    """ "nvrtc" when cuda-bindings is installed, else "nvcc" when it is on the PATH, else None."""
    if importlib.util.find_spec("cuda") is not None and importlib.util.find_spec("cuda.bindings") is not None:
        return "nvrtc"
    return "nvcc" if shutil.which("nvcc") else None


def _preload_cudart() -> None:
    """libtvm_runtime_cuda.so needs libcudart.so.13: where the system has none on the loader's path, use the
    one a CUDA build of PyTorch brings in site-packages (nvidia/*/lib), loaded globally so the dlopen finds it."""
    import ctypes
    import glob
    import sys

    for base in sys.path:
        for path in sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib", "libcudart.so.*"))):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return
            except OSError:
                continue


def ensure_cuda_runtime() -> bool:
    """Load TVM's CUDA runtime library where TVM did not: with TVM_USE_RUNTIME_LIB=1 (the device kit, which has
    no compiler library) `import tvm` loads no backend, and without libtvm_runtime_cuda.so TVM has no CUDA
    device API and cannot load a module's CUDA code. Returns whether it is loaded."""
    import pathlib

    import tvm
    from tvm.base import _LOADED_LIBS

    if "tvm_runtime_cuda" in _LOADED_LIBS or not tvm.base._RUNTIME_ONLY:
        return True  # a full TVM loads it (or finds it missing) through its cuda backend at import
    from tvm_ffi.libinfo import load_lib_ctypes

    runtime_dir = pathlib.Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent
    for attempt in range(2):
        try:
            # RTLD_LOCAL, as tvm.backend.cuda.register_backend loads it: only its registrations are needed
            _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(
                package="tvm", target_name="tvm_runtime_cuda", extra_lib_paths=[runtime_dir], mode="RTLD_LOCAL"
            )
            return True
        except (OSError, RuntimeError):
            if attempt == 0:
                _preload_cudart()
    return False


@functools.cache
def gpu_available() -> bool:
    """Whether TVM sees an NVIDIA GPU here (cheap without one: no device node and no driver, no TVM call)."""
    if not (os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi")):
        return False
    import tvm

    if not ensure_cuda_runtime():
        return False
    try:
        return bool(tvm.cuda(0).exist)
    except Exception:  # a TVM build without the CUDA runtime
        return False


def device_arch() -> str:
    """The attached GPU's architecture, e.g. "sm_90"."""
    import tvm

    return "sm_" + str(tvm.cuda(0).compute_version).replace(".", "")


class _ArchOnlyTarget:
    """Stands in for tvm.target.Target inside tvm.support.nvcc where TVM is runtime-only (Target lives in the
    compiler library): compile_cuda reads nothing of the current target but its arch."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.attrs = {"arch": arch}

    def current(self, allow_none: bool = True) -> _ArchOnlyTarget:
        return self


def _binary(code: str, arch: str, compiler: str) -> bytes:
    import tvm
    from tvm.support import nvcc

    fmt = "fatbin" if compiler == "nvcc" else "cubin"
    if not tvm.base._RUNTIME_ONLY:
        # compile_cuda reads the compute version from the current target even when given `arch`
        with tvm.target.Target({"kind": "cuda", "arch": arch}):
            return bytes(nvcc.compile_cuda(code, target_format=fmt, arch=arch, compiler=compiler))
    if compiler == "nvcc":
        return _nvcc_fatbin(code, arch)  # TVM's nvcc path reads the pass context, a compiler-library object
    saved = nvcc.Target
    nvcc.Target = _ArchOnlyTarget(arch)
    try:
        return bytes(nvcc.compile_cuda(code, target_format=fmt, arch=arch, compiler=compiler))
    finally:
        nvcc.Target = saved


def _nvcc_fatbin(code: str, arch: str) -> bytes:
    """nvcc as tvm.support.nvcc runs it (same flags), for a runtime-only TVM."""
    import subprocess
    import tempfile

    sm = arch.removeprefix("sm_")
    with tempfile.TemporaryDirectory(prefix="woodpecker-nvcc-") as tmp:
        src, out = os.path.join(tmp, "tvm_kernels.cu"), os.path.join(tmp, "tvm_kernels.fatbin")
        with open(src, "w") as f:
            f.write(code)
        cmd = ["nvcc", "--fatbin", "-O3", "-gencode", f"arch=compute_{sm},code=sm_{sm}",
               "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__", "-U__CUDA_NO_BFLOAT16_OPERATORS__",
               "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-U__CUDA_NO_BFLOAT162_OPERATORS__",
               "-U__CUDA_NO_BFLOAT162_CONVERSIONS__", "--expt-relaxed-constexpr", "--expt-extended-lambda",
               *([] if os.environ.get("TVM_CUDA_NVCC_NO_FAST_MATH") else ["--use_fast_math"]), "-o", out, src]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"nvcc failed: {proc.stderr.strip()[-2000:]}")
        with open(out, "rb") as f:
            return f.read()


def binary_path(binary_dir: str, code: str) -> str:
    """Where the device binary of a CUDA source is cached: named by the source's hash, so builders and the
    loading process find the same file without talking to each other."""
    return os.path.join(binary_dir, hashlib.sha256(code.encode()).hexdigest()[:32] + ".bin")


def cached_binary(binary_dir: str, code: str, arch: str, compiler: str) -> bytes:
    """The device binary of a CUDA source: read from binary_dir when there, else compiled and stored there
    (written to a temporary name first, so a concurrent reader never sees half a file)."""
    path = binary_path(binary_dir, code)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    data = _binary(code, arch, compiler)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data


def install_callback(binary_dir: str, compiler: str, arch: str) -> None:
    """TVM compiles a loaded library's CUDA source through this callback: compiled binaries are cached in
    binary_dir under the source's hash, so a second load of the same artifact compiles nothing."""
    if _CALLBACK == {"dir": binary_dir, "compiler": compiler, "arch": arch}:
        return
    import tvm_ffi

    os.environ["TVM_CUDA_COMPILE_MODE"] = compiler

    @tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
    def _compile(code, *_):
        return bytearray(cached_binary(binary_dir, code, arch, compiler))

    _CALLBACK.clear()
    _CALLBACK.update({"dir": binary_dir, "compiler": compiler, "arch": arch})
