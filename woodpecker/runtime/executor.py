"""Executor: runs the kernel calls of a compiled model over one preallocated arena.

At construction every argument of every call is bound once to a tensor view of the arena (or of a constant), so
a run is a plain loop of native calls: no allocation, no shape checks, a few hundred nanoseconds of Python per
kernel. Inputs are validated by name, shape and dtype and copied into their arena slots; outputs are copied out.
An Executor is not thread-safe (its arena is shared by all runs); create one per thread.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from woodpecker.errors import InputError
from woodpecker.runtime.host_memory import host_buffer, pack
from woodpecker.runtime.memory import ALIGN, plan_memory


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    # The declared element type of a model input/output of a narrow type (float16, bfloat16, float8, int4...:
    # woodpecker.ir.formats), held in `dtype` (its carrier); "" for the others. The user sees the declared type.
    narrow: str = ""

    def to_json(self) -> dict:
        d = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.narrow:
            d["narrow"] = self.narrow
        return d

    @staticmethod
    def from_json(d: Mapping) -> TensorSpec:
        return TensorSpec(str(d["name"]), tuple(int(x) for x in d["shape"]), str(d["dtype"]), str(d.get("narrow", "")))

    def to_user(self, value: np.ndarray) -> np.ndarray:
        """An output value as the user sees it: in its declared type (exact: the carrier holds its values)."""
        if not self.narrow:
            return value
        from woodpecker.ir import formats  # ml_dtypes: needed only by models with narrow types (not by a device kit)

        return value.astype(formats.numpy_dtype(self.narrow))

    def from_user(self, value: np.ndarray) -> np.ndarray:
        """An input of a narrow type as its carrier. A float array of another float type is first rounded to the
        declared type (as a float64 array for a float32 input is rounded to float32)."""
        from woodpecker.ir import formats

        declared = formats.numpy_dtype(self.narrow)
        if value.dtype != declared:
            if not (value.dtype.kind == "f" and self.narrow in formats.FLOAT_FORMATS):
                raise InputError(f"input {self.name!r} has dtype {value.dtype}, expected {self.narrow}")
            value = value.astype(declared)
        return value.astype(self.dtype)


@dataclasses.dataclass(frozen=True)
class CallSpec:
    """One kernel launch: function name and (value, viewed shape) per argument, output last.

    `vendor` is empty for a generated kernel (a function of the native library); otherwise it names the vendor
    library the planner chose for this call ("onnxruntime", "torch", "numpy") and `func` names its region.
    """

    func: str
    args: tuple[tuple[str, tuple[int, ...]], ...]
    vendor: str = ""

    def to_json(self) -> dict:
        d = {"func": self.func, "args": [[v, list(s)] for v, s in self.args]}
        if self.vendor:
            d["vendor"] = self.vendor
        return d

    @staticmethod
    def from_json(d: Mapping) -> CallSpec:
        return CallSpec(str(d["func"]), tuple((str(v), tuple(int(x) for x in s)) for v, s in d["args"]),
                        str(d.get("vendor", "")))


@dataclasses.dataclass(frozen=True)
class Program:
    """Everything the executor needs besides the native library and the constants."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]  # name = user-facing output name
    output_values: tuple[str, ...]  # graph values holding the outputs
    values: Mapping[str, tuple[tuple[int, ...], str]]  # run-time value -> (shape, dtype)
    calls: tuple[CallSpec, ...]
    views: tuple[tuple[str, str], ...]  # (src, dst) in step order, each with the index of the step before it
    view_steps: tuple[int, ...]
    # (part, whole, byte offset): `part` is stored inside `whole` (an in-place concat's input); none on devices
    slices: tuple[tuple[str, str, int], ...] = ()

    def to_json(self) -> dict:
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "output_values": list(self.output_values),
            "values": {k: [list(s), d] for k, (s, d) in self.values.items()},
            "calls": [c.to_json() for c in self.calls],
            "views": [list(v) for v in self.views],
            "view_steps": list(self.view_steps),
            **({"slices": [list(x) for x in self.slices]} if self.slices else {}),
        }

    @staticmethod
    def from_json(d: Mapping) -> Program:
        return Program(
            inputs=tuple(TensorSpec.from_json(t) for t in d["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in d["outputs"]),
            output_values=tuple(d["output_values"]),
            values={k: (tuple(int(x) for x in s), str(dt)) for k, (s, dt) in d["values"].items()},
            calls=tuple(CallSpec.from_json(c) for c in d["calls"]),
            views=tuple((str(a), str(b)) for a, b in d["views"]),
            view_steps=tuple(int(i) for i in d["view_steps"]),
            slices=tuple((str(p), str(w), int(o)) for p, w, o in d.get("slices", ())),
        )


def plan_program_memory(program: Program, constants: Mapping[str, np.ndarray]):
    """The arena layout of a program (shared by this executor and the RISC-V firmware generator)."""
    return plan_memory(*program_lifetimes(program, constants))


def program_lifetimes(program: Program, constants: Mapping[str, np.ndarray]):
    """(bytes, first step, last step, views, slices) of the program's run-time values, as plan_memory takes them.

    A value lives from the call that writes it to its last reader. Inputs live to the end, so that execute()
    can run again on the same inputs (benchmarks); outputs live until they are copied out. A slice's whole is
    written by its parts' calls (its storage root starts at the first)."""
    n = len(program.calls)
    defs: dict[str, int] = {}
    last: dict[str, int] = {}
    runtime_values = {v for v in program.values if v not in constants}
    for t in program.inputs:
        defs[t.name] = -1
    for i, call in enumerate(program.calls):
        *ins, (out, _) = call.args
        for v, _ in ins:
            last[v] = i
        defs.setdefault(out, i)
    for (src, dst), step in zip(program.views, program.view_steps):
        defs.setdefault(dst, step)
        last[src] = max(last.get(src, -1), step)
    for part, whole, _ in program.slices:
        defs[whole] = min(defs.get(whole, n), defs.get(part, -1))
    for v in program.output_values:
        last[v] = n
    for t in program.inputs:
        last[t.name] = n
    sizes = {}
    for v in runtime_values:
        shape, dtype = program.values[v]
        sizes[v] = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        defs.setdefault(v, -1)
        last.setdefault(v, defs[v])
    return sizes, defs, last, [(a, b) for a, b in program.views if a in runtime_values], list(program.slices)


def validate_inputs(program: Program, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs as arrays of the program's shapes and dtypes; InputError names the first wrong one.

    A dtype of the same kind is converted (float64 -> float32); anything else is an error."""
    expected = {t.name for t in program.inputs}
    if not isinstance(inputs, Mapping):  # a list or tuple of arrays would fail below with a TypeError
        raise InputError(f"inputs must be a dict name -> array, got {type(inputs).__name__}; "
                         f"the model's inputs are {sorted(expected)}")
    unknown = sorted((str(k) for k in set(inputs) - expected))
    if unknown:
        raise InputError(f"unknown input {unknown[0]!r}; the model's inputs are {sorted(expected)}")
    missing = sorted(expected - set(inputs))
    if missing:
        raise InputError(f"missing input {missing[0]!r}; the model's inputs are {sorted(expected)}")
    out = {}
    for spec in program.inputs:
        value = np.asarray(inputs[spec.name])
        if tuple(value.shape) != spec.shape:
            raise InputError(f"input {spec.name!r} has shape {list(value.shape)}, expected {list(spec.shape)}")
        if spec.narrow:
            value = spec.from_user(value)
        if value.dtype != np.dtype(spec.dtype):
            if np.can_cast(value.dtype, spec.dtype, casting="same_kind") and value.dtype.kind == np.dtype(spec.dtype).kind:
                value = value.astype(spec.dtype)
            else:
                raise InputError(f"input {spec.name!r} has dtype {value.dtype}, expected {spec.dtype}")
        out[spec.name] = np.ascontiguousarray(value)
    return out


class Executor:
    on_device = False  # calls run on the host: each returns when its work is done

    def __init__(self, library, program: Program, constants: Mapping[str, np.ndarray],
                 vendor_regions: Mapping[str, object] | None = None, threads: int | None = None,
                 huge_pages: bool | None = None) -> None:
        """vendor_regions: region (woodpecker.planner.regions.Region) of each vendor call, by its `func`.
        huge_pages: back the arena and the constants with transparent huge pages (default: the config's)."""
        import tvm

        from woodpecker import config

        self.program = program
        self._lib = library
        dev = tvm.cpu(0)
        huge = config.get().huge_pages if huge_pages is None else huge_pages
        self.memory = plan_program_memory(program, constants)
        self._arena = host_buffer(max(self.memory.arena_bytes, ALIGN), huge)
        # the constants are copied once into one block (host_memory.pack: they share huge pages) that the kernels
        # read in place through DLPack views, and the vendor regions through numpy ones
        self._const_np = pack(constants, huge)
        self._keep: list = []  # keeps every viewed numpy array alive for the DLPack tensors that borrow it

        view_np = self.view

        const_tensors: dict[tuple[str, tuple[int, ...]], object] = {}

        def bind(value: str, shape: tuple[int, ...]):
            if value in self._const_np:
                key = (value, tuple(shape))
                if key not in const_tensors:
                    arr = self._const_np[value].reshape(shape)
                    self._keep.append(arr)
                    const_tensors[key] = (tvm.runtime.from_dlpack(arr) if arr.nbytes
                                          else tvm.runtime.tensor(arr, dev))
                return const_tensors[key]
            arr = view_np(value, shape)
            self._keep.append(arr)
            if arr.nbytes == 0:
                return tvm.runtime.empty(shape, program.values[value][1], dev)
            return tvm.runtime.from_dlpack(arr)

        self._calls = []
        for call in program.calls:
            if call.vendor:
                self._calls.append(self._bind_vendor(call, vendor_regions or {}, threads))
                continue
            func = library[call.func] if not hasattr(library, "get_function") else library.get_function(call.func)
            self._calls.append((func, tuple(bind(v, s) for v, s in call.args)))
        self._inputs = {t.name: (t, view_np(t.name, t.shape)) for t in program.inputs}
        self._outputs = [
            (spec, view_np(v, spec.shape) if v not in self._const_np else self._const_np[v].reshape(spec.shape))
            for spec, v in zip(program.outputs, program.output_values)
        ]

    def view(self, value: str, shape: Sequence[int], dtype: str | None = None) -> np.ndarray:
        """A numpy view of a value's storage (the arena, or the constant itself) with the given shape."""
        if value in self._const_np:
            return self._const_np[value].reshape(tuple(shape))
        root = self.memory.root[value]
        start = self.memory.placements[root].offset + self.memory.offsets.get(value, 0)
        dt = np.dtype(dtype or self.program.values[value][1])
        count = int(np.prod(shape, dtype=np.int64))
        return self._arena[start : start + count * dt.itemsize].view(dt).reshape(tuple(shape))

    def _bind_vendor(self, call: CallSpec, regions: Mapping[str, object], threads: int | None):
        from woodpecker import config
        from woodpecker.runtime.vendors import make_vendor

        region = regions[call.func]
        impl = make_vendor(call.vendor, region, self._const_np, threads or config.get().num_threads)  # type: ignore[arg-type]
        *ins, (out, out_shape) = call.args
        run = impl.bind([self.view(v, s) for v, s in ins], self.view(out, out_shape))
        return (run, ())

    # -- what the planner needs of any executor (woodpecker.planner.plan) ------------------------------------------
    def scratch(self, shape: Sequence[int], dtype: str) -> np.ndarray:
        """A buffer outside the arena, where a candidate implementation writes while it is checked and timed."""
        return np.empty(tuple(shape), dtype)

    @staticmethod
    def to_host(value) -> np.ndarray:
        return np.asarray(value)

    def sync(self) -> None:
        """Every call returns when its work is done on the CPU."""

    # -- running -----------------------------------------------------------------------------------------------
    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        for name, value in validate_inputs(self.program, inputs).items():
            np.copyto(self._inputs[name][1], value)

    def execute(self) -> None:
        for func, args in self._calls:
            func(*args)

    def get_outputs(self) -> dict[str, np.ndarray]:
        return {spec.name: spec.to_user(np.array(view, copy=True)) for spec, view in self._outputs}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.set_inputs(inputs)
        self.execute()
        return self.get_outputs()

    def time_run(self, repeat: int = 50, warmup: int = 5) -> list[float]:
        """Seconds per run of the kernels alone (inputs already set), one figure per repeat."""
        for _ in range(warmup):
            self.execute()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            self.execute()
            times.append(time.perf_counter() - t0)
        return times

    def profile(self, repeat: int = 20, each: bool = False) -> list[tuple[str, float]]:
        """Median seconds of each kernel call, in call order (inputs already set). `each`: every call is timed by
        itself, the way the planner times its choices (see profile_each_call), instead of in model order."""
        self.execute()
        if each:
            return profile_each_call(self.program, self._calls, repeat)
        return profile_calls(self.program, self._calls, repeat)


def profile_calls(program: Program, calls: Sequence[tuple[Callable, tuple]], repeat: int,
                  wait: Callable[[], None] | None = None) -> list[tuple[str, float]]:
    """Median seconds of each bound call (function, arguments), in program order, over `repeat` passes; `wait`
    (a device sync) ends each timed call where calls return before their work is done."""
    per_call: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for i, (func, args) in enumerate(calls):
            t0 = time.perf_counter()
            func(*args)
            if wait is not None:
                wait()
            per_call[i].append(time.perf_counter() - t0)
    return [(c.func, sorted(ts)[len(ts) // 2]) for c, ts in zip(program.calls, per_call)]


def profile_each_call(program: Program, calls: Sequence[tuple[Callable, tuple]], repeat: int) -> list[tuple[str, float]]:
    """Median seconds of each bound call, timed call by call with the planner's method
    (woodpecker.measure.interleaved.time_interleaved: warm-up runs, then blocks of back-to-back runs), so that a call's
    figure and the planner's timing of the same choice agree. Why not in model order (profile_calls): there a call
    pays for the worker threads the previous call's runtime leaves spinning (onnxruntime, OpenMP, TVM's pool); a
    bench report showed an 11 us pooling kernel at 1931 us and a convolution at 10x its planned time."""
    from woodpecker.measure.interleaved import time_interleaved

    timed = []
    for c, (func, args) in zip(program.calls, calls):
        timed.append((c.func, time_interleaved({"call": lambda f=func, a=args: f(*a)}, repeat)["call"]))
    return timed
