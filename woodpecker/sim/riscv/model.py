"""Whole-model runs on simulated RISC-V: Program + constants + kernel objects -> firmware C -> ELF -> outputs.

`write_model_sources` turns a compiled model's Program into C a firmware project can link:

    model.h     the entry point and the size of every input and output
    model.c     a static arena laid out exactly as woodpecker.runtime.executor.plan_program_memory lays out the host
                executor's, one static DLTensor per (value, shape) a kernel sees, and
                `int woodpecker_model_run(const void *const *inputs, void *const *outputs)`, which copies the
                inputs in, calls every kernel's packed function in order, and copies the outputs out
    weights.S   the constants as read-only data: `.incbin "weights.bin"` (64-byte aligned tensors)

It needs only the kernel objects and harness/wp_runtime.c (workspace, parallel launch, error hook).
`run_model` links all of it with the model harness and runs it under qemu with the counting plugin; each kernel
call is a measured region, so the result carries per-call counts and cycle estimates as well as the outputs.
`build_kernel_objects` compiles a lowered model's tasks for the profile (one object file per kernel).
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np

from woodpecker.errors import InputError, TargetError
from woodpecker.runtime.executor import Program, plan_program_memory
from woodpecker.runtime.memory import ALIGN
from woodpecker.sim.riscv import image
from woodpecker.sim.riscv.cycle_model import CycleModel
from woodpecker.sim.riscv.kernel import build_kernel_object, resolve_profile
from woodpecker.sim.riscv.qemu import SimCounts, run_image
from woodpecker.sim.riscv.toolchain import toolchain_for


@dataclasses.dataclass(frozen=True)
class ModelSources:
    model_c: pathlib.Path
    model_h: pathlib.Path
    weights_s: pathlib.Path
    weights_bin: pathlib.Path
    arena_bytes: int
    weights_bytes: int


@dataclasses.dataclass(frozen=True)
class CallEstimate:
    func: str  # kernel of this call, in call order
    counts: Mapping[str, int]
    cycles: float
    seconds: float


@dataclasses.dataclass(frozen=True)
class ModelRunResult:
    outputs: dict[str, np.ndarray]  # user-facing output name -> array
    counts: Mapping[str, int]  # all kernel calls together
    cycles: float  # estimated device cycles of all kernel calls
    seconds: float
    calls: tuple[CallEstimate, ...]
    sim_secs: float  # host time qemu took
    raw: SimCounts | None = None


@dataclasses.dataclass(frozen=True)
class KernelObject:
    name: str  # function symbol (the task name)
    path: pathlib.Path
    knobs: Mapping[str, int | str]
    origin: str  # "tuned" | "default" | "unscheduled"


# -- C generation -----------------------------------------------------------------------------------------------

_C_PRELUDE = """\
#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* The binary interface of a TVM packed function (DLPack tensors passed as TVMFFIAny, type index 7). */
typedef struct { int32_t device_type, device_id; } wpm_device;
typedef struct { uint8_t code, bits; uint16_t lanes; } wpm_dtype;
typedef struct {
    void *data;
    wpm_device device;
    int32_t ndim;
    wpm_dtype dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} wpm_tensor;
typedef struct {
    int32_t type_index;
    uint32_t zero_padding;
    union { int64_t v_int64; double v_float64; void *v_ptr; };
} wpm_any;

#ifdef WOODPECKER_PROFILE_CALLS
/* Simulation builds bracket every kernel call as a measured region (harness/wp_runtime.c). */
void wp_region_begin(void);
void wp_region_end(void);
#define WPM_CALL_BEGIN() wp_region_begin()
#define WPM_CALL_END() wp_region_end()
#else
#define WPM_CALL_BEGIN() ((void)0)
#define WPM_CALL_END() ((void)0)
#endif

static void wpm_copy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
}
"""

_DL_CODE = {"i": 0, "u": 1, "f": 2, "b": 6}


def _c_ident(name: str, what: str) -> str:
    if not name.isidentifier() or not name.isascii():
        raise TargetError(f"{what} {name!r} is not a C identifier; it cannot be linked into firmware")
    return name


def _nbytes(shape: Sequence[int], dtype: str) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def write_model_sources(program: Program, constants: Mapping[str, np.ndarray], out_dir: str | pathlib.Path,
                        name: str = "model") -> ModelSources:
    """Write model.c, model.h, weights.S and weights.bin for `program` into out_dir (see the module docstring)."""
    for call in program.calls:
        if getattr(call, "vendor", ""):
            raise TargetError(f"call {call.func!r} runs in the vendor library {call.vendor!r}, which a RISC-V "
                              f"target does not have; compile the model without vendor kernels")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    memory = plan_program_memory(program, constants)
    consts = {k: np.ascontiguousarray(v) for k, v in constants.items()}

    # constants, each 64-byte aligned, in first-use order
    order: list[str] = []
    for call in program.calls:
        for v, _ in call.args:
            if v in consts and v not in order:
                order.append(v)
    for v in program.output_values:
        if v in consts and v not in order:
            order.append(v)
    const_off: dict[str, int] = {}
    blob = bytearray()
    for v in order:
        blob += b"\0" * ((-len(blob)) % ALIGN)
        const_off[v] = len(blob)
        blob += consts[v].tobytes()
    weights_bin = out / "weights.bin"
    weights_bin.write_bytes(bytes(blob))

    def location(value: str) -> str:
        if value in const_off:
            return f"(void *)(woodpecker_weights + {const_off[value]})"
        root = memory.root[value]
        return f"(void *)(woodpecker_arena + {memory.placements[root].offset + memory.offsets.get(value, 0)})"

    def dtype_of(value: str) -> str:
        return str(consts[value].dtype) if value in consts else program.values[value][1]

    # one tensor per (value, shape) a kernel sees
    tensors: dict[tuple[str, tuple[int, ...]], int] = {}
    for call in program.calls:
        for v, s in call.args:
            tensors.setdefault((v, tuple(s)), len(tensors))
    lines = [f"/* Generated by woodpecker from model {name!r}: {len(program.calls)} kernel calls. */", _C_PRELUDE]
    funcs = sorted({_c_ident(c.func, "kernel") for c in program.calls})
    for f in funcs:
        lines.append(f"int __tvm_ffi_{f}(void *self, const wpm_any *args, int32_t num_args, wpm_any *result);")
    arena_bytes = max(memory.arena_bytes, ALIGN)
    lines += [
        "",
        "extern const unsigned char woodpecker_weights[];  /* weights.S */",
        f"static unsigned char woodpecker_arena[{arena_bytes}] __attribute__((aligned({ALIGN})));",
        "",
    ]
    for (v, s), i in tensors.items():
        lines.append(f"static int64_t wpm_shape{i}[] = {{{', '.join(str(d) for d in s) or '1'}}};  /* {v} */")
    lines.append("static wpm_tensor wpm_tensors[] = {")
    for (v, s), i in tensors.items():
        dt = np.dtype(dtype_of(v))
        if dt.kind not in _DL_CODE:
            raise TargetError(f"value {v!r} has dtype {dt}, which cannot be passed to a kernel")
        lines.append(f"    {{{location(v)}, {{1, 0}}, {len(s)}, {{{_DL_CODE[dt.kind]}, {dt.itemsize * 8}, 1}}, "
                     f"wpm_shape{i}, NULL, 0}},")
    lines.append("};")
    for ci, call in enumerate(program.calls):
        items = "".join(f"\n    {{.type_index = 7, .v_ptr = &wpm_tensors[{tensors[(v, tuple(s))]}]}},  /* {v} */"
                        for v, s in call.args)
        lines.append(f"static wpm_any wpm_args{ci}[] = {{  /* {call.func} */{items}\n}};")
    lines += ["", "int woodpecker_model_run(const void *const *inputs, void *const *outputs)", "{",
              "    wpm_any result;", "    int rc;"]
    for i, t in enumerate(program.inputs):
        lines.append(f"    wpm_copy({location(t.name)}, inputs[{i}], {_nbytes(t.shape, t.dtype)});  /* {t.name} */")
    for ci, call in enumerate(program.calls):
        lines += [
            "    WPM_CALL_BEGIN();",
            f"    rc = __tvm_ffi_{call.func}(NULL, wpm_args{ci}, {len(call.args)}, &result);",
            "    WPM_CALL_END();",
            "    if (rc != 0)",
            f"        return {ci + 1};  /* 1 + index of the failing call */",
        ]
    for i, (spec, v) in enumerate(zip(program.outputs, program.output_values)):
        size = _nbytes(spec.shape, spec.dtype)
        lines.append(f"    wpm_copy(outputs[{i}], {location(v)}, {size});  /* {spec.name} */")
    lines += ["    return 0;", "}", ""]
    model_c = out / "model.c"
    model_c.write_text("\n".join(lines))

    h = [f"/* Generated by woodpecker from model {name!r}. Link with model.c, weights.S (weights.bin), the kernel",
         " * objects and wp_runtime.c. Buffers are raw C-contiguous arrays in the dtype and shape listed. */",
         "#ifndef WOODPECKER_MODEL_H", "#define WOODPECKER_MODEL_H", "",
         f"#define WOODPECKER_NUM_INPUTS {len(program.inputs)}",
         f"#define WOODPECKER_NUM_OUTPUTS {len(program.outputs)}",
         f"#define WOODPECKER_ARENA_BYTES {arena_bytes}",
         f"#define WOODPECKER_WEIGHTS_BYTES {len(blob)}", ""]
    for i, t in enumerate(program.inputs):
        h.append(f"#define WOODPECKER_INPUT{i}_BYTES {_nbytes(t.shape, t.dtype)}  "
                 f"/* {t.name}: {t.dtype} {list(t.shape)} */")
    for i, t in enumerate(program.outputs):
        h.append(f"#define WOODPECKER_OUTPUT{i}_BYTES {_nbytes(t.shape, t.dtype)}  "
                 f"/* {t.name}: {t.dtype} {list(t.shape)} */")
    h += ["", "/* Runs the model once. Returns 0, or 1 + the index of the kernel call that failed. */",
          "int woodpecker_model_run(const void *const *inputs, void *const *outputs);", "", "#endif", ""]
    model_h = out / "model.h"
    model_h.write_text("\n".join(h))

    weights_s = out / "weights.S"
    weights_s.write_text("/* The model's constants (assemble from this folder, or with -Wa,-I<folder>). */\n"
                         "    .section .rodata.woodpecker_weights, \"a\"\n"
                         f"    .balign {ALIGN}\n    .globl woodpecker_weights\nwoodpecker_weights:\n"
                         "    .incbin \"weights.bin\"\n    .byte 0\n")
    return ModelSources(model_c, model_h, weights_s, weights_bin, arena_bytes, len(blob))


# -- kernels ----------------------------------------------------------------------------------------------------

def build_kernel_objects(tasks: Mapping[str, object], profile, out_dir: str | pathlib.Path,
                         knobs: Mapping[str, Mapping[str, int | str]] | None = None) -> dict[str, KernelObject]:
    """Compile every task (Task by workload key) for the profile: one object file per kernel, by task key.

    Each task gets its knobs from `knobs` when given, else the profile's default schedule (schedules.py); knobs
    that do not give a legal schedule fall back as in woodpecker.codegen.build (defaults, then no schedule).
    """
    from woodpecker.codegen.build import schedule_with_fallback
    from woodpecker.sim.riscv.schedules import default_knobs

    profile = resolve_profile(profile)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for key, task in tasks.items():
        given = (knobs or {}).get(key)
        # untuned tasks get the defaults sized to this profile's register file, not the AVX2 ones
        first, origin = (given, "tuned") if given is not None else (default_knobs(task, profile), "default")
        mod, chosen = schedule_with_fallback(task, first, origin, profile.target_class)  # type: ignore[arg-type]
        path = build_kernel_object(mod, profile, out / f"{task.name}.o")  # type: ignore[attr-defined]
        result[key] = KernelObject(task.name, path, dict(chosen.knobs), chosen.origin)  # type: ignore[attr-defined]
    return result


# -- running ----------------------------------------------------------------------------------------------------

def build_model_image(program: Program, constants: Mapping[str, np.ndarray], objects: Sequence[str | pathlib.Path],
                      inputs: Sequence[np.ndarray], profile, workdir: pathlib.Path) -> pathlib.Path:
    """model.c + weights + kernel objects + model harness + data.S (the inputs) -> workdir/model.elf."""
    profile = resolve_profile(profile)
    tc = toolchain_for(profile)
    model = CycleModel.from_profile(profile)
    src = write_model_sources(program, constants, workdir)
    model_o = image.compile_c(tc, src.model_c, workdir / "model.o", ("-DWOODPECKER_PROFILE_CALLS",))
    weights_o = image.compile_c(tc, src.weights_s, workdir / "weights.o", (f"-Wa,-I{workdir}",))
    out_sizes = [_nbytes(t.shape, t.dtype) for t in program.outputs]
    data = image.model_data(workdir, inputs, out_sizes, model.cores, tc.xlen)
    objs = [*image.harness_objects(tc, "model_main.c"), data, model_o, weights_o, *map(pathlib.Path, objects)]
    return image.link(tc, objs, workdir / "model.elf")


def run_model(program: Program, constants: Mapping[str, np.ndarray], objects: Sequence[str | pathlib.Path],
              inputs: Mapping[str, np.ndarray], profile, *, cache: bool = True, timeout_s: float = 600.0,
              workdir: str | pathlib.Path | None = None) -> ModelRunResult:
    """Run a compiled model once under qemu on the profile's simulated device.

    Args:
        program, constants: the compiled model (CompiledModel.program / .constants, or woodpecker.lowering.to_runtime.to_program).
        objects: the kernel object files, compiled for the profile's target (build_kernel_objects).
        inputs: input name -> array (dtypes of the same kind are cast, as the host executor does).
        profile: a riscv/mcu HardwareProfile, or its id or alias.
        cache: simulate the profile's data caches.

    Returns the outputs by name, the counts of all kernel calls, and cycles/seconds on the modelled device
    (with one CallEstimate per kernel call).
    """
    profile = resolve_profile(profile)
    model = CycleModel.from_profile(profile)
    arrays = _check_inputs(program, inputs)
    with tempfile.TemporaryDirectory(prefix="wp-model-", dir=workdir) as tmp:
        work = pathlib.Path(tmp)
        elf = build_model_image(program, constants, objects, arrays, profile, work)
        run = run_image(elf, toolchain_for(profile), model.plugin_options(cache), timeout_s)
    outputs = {}
    offset = 0
    for spec in program.outputs:
        n = _nbytes(spec.shape, spec.dtype)
        raw = run.stdout[offset:offset + n]
        outputs[spec.name] = np.frombuffer(raw, dtype=spec.dtype).reshape(spec.shape).copy()
        offset += n
    if offset != len(run.stdout):
        from woodpecker.sim.riscv.qemu import SimulationError

        raise SimulationError(f"the model wrote {len(run.stdout)} output bytes, expected {offset}")
    calls = []
    for i, call in enumerate(program.calls):
        one = SimCounts((run.counts.regions[i],), tuple(dataclasses.replace(t, region=0) for t in run.counts.tasks
                                                         if t.region == i), run.counts.cache_model)
        est = model.estimate(one)
        calls.append(CallEstimate(call.func, dict(run.counts.regions[i]), est.cycles, est.seconds))
    total = model.estimate(run.counts)
    return ModelRunResult(outputs, run.counts.total(), total.cycles, total.seconds, tuple(calls), run.wall_secs,
                          run.counts)


def _check_inputs(program: Program, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    expected = [t.name for t in program.inputs]
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs must be a dict name -> array; the model's inputs are {expected}")
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise InputError(f"unknown input {unknown[0]!r}; the model's inputs are {expected}")
    arrays = []
    for t in program.inputs:
        if t.name not in inputs:
            raise InputError(f"missing input {t.name!r}; the model's inputs are {expected}")
        value = np.asarray(inputs[t.name])
        if tuple(value.shape) != tuple(t.shape):
            raise InputError(f"input {t.name!r} has shape {list(value.shape)}, expected {list(t.shape)}")
        if value.dtype != np.dtype(t.dtype):
            if value.dtype.kind != np.dtype(t.dtype).kind:
                raise InputError(f"input {t.name!r} has dtype {value.dtype}, expected {t.dtype}")
            value = value.astype(t.dtype)
        arrays.append(np.ascontiguousarray(value))
    return arrays
