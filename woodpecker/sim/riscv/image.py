"""Simulation images: kernel objects + harness + generated data.S -> one static RISC-V ELF.

The harness sources (harness/) are compiled once per toolchain into the user cache. Each run gets a data.S that
`.incbin`s the raw input tensors and lists every argument's rank, dtype and shape (the kernel harness) or the
model's input and output buffers (the model harness); linking takes about 10 ms, so images are never cached.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
from collections.abc import Sequence

import numpy as np

from woodpecker import config
from woodpecker.errors import TargetError
from woodpecker.sim.riscv.toolchain import Toolchain

HARNESS_DIR = pathlib.Path(__file__).resolve().parent / "harness"
RUNTIME_SOURCES = ("wp_start.S", "wp_runtime.c")
HEADERS = ("wp_runtime.h",)
ALIGN_BYTES = 64  # TVM's kernels assume 64-byte aligned tensors (vector loads)

# DLPack type codes
_DL_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}


def dl_dtype(dtype) -> int:
    """numpy dtype -> packed DLDataType (code | bits << 8 | lanes << 16), as the harness reads it."""
    dt = np.dtype(dtype)
    if dt.kind not in _DL_CODES:
        raise TargetError(f"dtype {dt} cannot be passed to a simulated kernel")
    return _DL_CODES[dt.kind] | (dt.itemsize * 8) << 8 | 1 << 16


def _compile(tc: Toolchain, src: pathlib.Path, out: pathlib.Path, defines: Sequence[str] = ()) -> None:
    cmd = [tc.cc, *tc.cflags, *defines, f"-I{HARNESS_DIR}", "-c", "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
        raise TargetError(f"compiling {src.name} for {tc.march} failed: {first}")


def harness_objects(tc: Toolchain, main: str) -> list[pathlib.Path]:
    """Compiled start-up code, runtime shims and `main` (kernel_main.c or model_main.c), cached per toolchain."""
    names = (*RUNTIME_SOURCES, main)
    digest = hashlib.sha256(tc.key().encode() + " ".join(tc.cflags).encode())
    for name in (*names, *HEADERS):
        digest.update((HARNESS_DIR / name).read_bytes())
    out_dir = config.get().cache_dir / "sim" / f"harness-{tc.xlen}-{digest.hexdigest()[:16]}"
    objs = [out_dir / (pathlib.Path(n).stem + ".o") for n in names]
    if all(o.exists() for o in objs):
        return objs
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, obj in zip(names, objs):
        if obj.exists():
            continue
        tmp = obj.with_name(f"{obj.name}.{os.getpid()}.tmp.o")
        _compile(tc, HARNESS_DIR / name, tmp)
        os.replace(tmp, obj)
    return objs


def compile_c(tc: Toolchain, src: pathlib.Path, out: pathlib.Path, defines: Sequence[str] = ()) -> pathlib.Path:
    """Compile a generated C file (model.c) with the harness flags."""
    _compile(tc, src, out, defines)
    return out


def link(tc: Toolchain, objects: Sequence[pathlib.Path], out: pathlib.Path) -> pathlib.Path:
    # libgcc supplies the soft-float routines of FPU-less MCUs (rv32imc) and 64-bit division on rv32; picolibc
    # (searched only for symbols nothing else defines) the libm routines such as sqrtf on those MCUs.
    libs = ["-lgcc"]
    if tc.libc_dir is not None:
        libs = [f"-L{tc.libc_dir}", "-Wl,--start-group", "-lc", "-lgcc", "-Wl,--end-group"]
    cmd = [tc.cc, *tc.link_flags, "-o", str(out), *[str(o) for o in objects], *libs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "undefined reference" in ln or "error" in ln]
        hint = "" if tc.libc_dir else " (picolibc-riscv64-unknown-elf provides libm routines)"
        raise TargetError(f"linking the simulation image for {tc.march} failed: "
                          f"{(lines or [proc.stderr.strip()[:300]])[0]}{hint}")
    return out


# -- data.S -----------------------------------------------------------------------------------------------------

def _ptr_directive(xlen: int) -> str:
    return ".dword" if xlen == 64 else ".word"


def _incbin(path: pathlib.Path) -> str:
    text = str(path.resolve()).replace("\\", "\\\\").replace('"', '\\"')
    return f'.incbin "{text}"'


def _words(values: Sequence[int]) -> str:
    return ", ".join(str(int(v)) for v in values) if values else "0"


def kernel_data(workdir: pathlib.Path, inputs: Sequence[np.ndarray], outputs: Sequence[tuple[tuple[int, ...], str]],
                func_name: str, cores: int, xlen: int) -> pathlib.Path:
    """Write the raw inputs and data.S for the kernel harness; returns the data.S path.

    Arguments are passed to `__tvm_ffi_<func_name>` in order: the inputs, then one buffer per output.
    """
    lines = ["    .section .rodata"]
    symbols: list[str] = []
    ndims: list[int] = []
    dtypes: list[int] = []
    shape_off: list[int] = []
    shapes: list[int] = []
    nbytes: list[int] = []
    for i, arr in enumerate(inputs):
        arr = np.ascontiguousarray(arr)
        raw = workdir / f"in{i}.bin"
        arr.tofile(raw)
        lines += [f"    .balign {ALIGN_BYTES}", f"wp_in{i}: {_incbin(raw)}"]
        symbols.append(f"wp_in{i}")
        ndims.append(arr.ndim)
        dtypes.append(dl_dtype(arr.dtype))
        shape_off.append(len(shapes))
        shapes += list(arr.shape)
        nbytes.append(arr.nbytes)
    lines.append("    .section .bss")
    for i, (shape, dtype) in enumerate(outputs):
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        lines += [f"    .balign {ALIGN_BYTES}", f"wp_out{i}: .zero {max(size, 1)}"]
        symbols.append(f"wp_out{i}")
        ndims.append(len(shape))
        dtypes.append(dl_dtype(dtype))
        shape_off.append(len(shapes))
        shapes += list(shape)
        nbytes.append(size)
    ptr = _ptr_directive(xlen)
    exported = ("wp_nargs", "wp_noutputs", "wp_ncores", "wp_arg_ndim", "wp_arg_dtype", "wp_arg_shape_off",
                "wp_shapes", "wp_arg_nbytes", "wp_arg_data", "wp_kernel")
    lines += [
        "    .section .rodata",
        "    .balign 8",
        *[f"    .globl {s}" for s in exported],
        f"wp_nargs: .word {len(symbols)}",
        f"wp_noutputs: .word {len(outputs)}",
        f"wp_ncores: .word {int(cores)}",
        f"wp_arg_ndim: .word {_words(ndims)}",
        f"wp_arg_dtype: .word {_words(dtypes)}",
        f"wp_arg_shape_off: .word {_words(shape_off)}",
        "    .balign 8",
        f"wp_shapes: .dword {_words(shapes)}",
        f"wp_arg_nbytes: .dword {_words(nbytes)}",
        "    .balign 8",
        f"wp_arg_data: {ptr} {', '.join(symbols)}",
        f"wp_kernel: {ptr} __tvm_ffi_{func_name}",
        "",
    ]
    path = workdir / "data.S"
    path.write_text("\n".join(lines))
    return path


def model_data(workdir: pathlib.Path, inputs: Sequence[np.ndarray], output_nbytes: Sequence[int], cores: int,
               xlen: int) -> pathlib.Path:
    """Write the raw inputs and data.S for the model harness (model_main.c); returns the data.S path."""
    lines = ["    .section .rodata"]
    for i, arr in enumerate(inputs):
        raw = workdir / f"in{i}.bin"
        np.ascontiguousarray(arr).tofile(raw)
        lines += [f"    .balign {ALIGN_BYTES}", f"wp_in{i}: {_incbin(raw)}"]
    lines.append("    .section .bss")
    for i, n in enumerate(output_nbytes):
        lines += [f"    .balign {ALIGN_BYTES}", f"wp_out{i}: .zero {max(int(n), 1)}"]
    ptr = _ptr_directive(xlen)
    exported = ("wp_model_ninputs", "wp_model_noutputs", "wp_ncores", "wp_model_output_nbytes",
                "wp_model_inputs", "wp_model_outputs")
    in_syms = ", ".join(f"wp_in{i}" for i in range(len(inputs))) or "0"
    out_syms = ", ".join(f"wp_out{i}" for i in range(len(output_nbytes))) or "0"
    lines += [
        "    .section .rodata",
        "    .balign 8",
        *[f"    .globl {s}" for s in exported],
        f"wp_model_ninputs: .word {len(inputs)}",
        f"wp_model_noutputs: .word {len(output_nbytes)}",
        f"wp_ncores: .word {int(cores)}",
        "    .balign 8",
        f"wp_model_output_nbytes: .dword {_words(output_nbytes)}",
        f"wp_model_inputs: {ptr} {in_syms}",
        f"wp_model_outputs: {ptr} {out_syms}",
        "",
    ]
    path = workdir / "data.S"
    path.write_text("\n".join(lines))
    return path
