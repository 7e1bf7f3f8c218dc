"""CompiledModel: a compiled, runnable model (native library + program + weights), savable as a .wpk artifact."""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np

from woodpecker.runtime.executor import Executor, Program, TensorSpec, validate_inputs


@dataclasses.dataclass(frozen=True)
class KernelInfo:
    """What the artifact records of each kernel: its DSL source, schedule and where the schedule came from."""

    key: str  # workload key
    name: str  # function symbol
    family: str
    flops: int
    knobs: Mapping[str, int | str]
    origin: str  # "tuned" | "default" | "unscheduled"
    source: str  # DSL program
    calls: int  # launches per model run

    def to_json(self) -> dict:
        return {"key": self.key, "name": self.name, "family": self.family, "flops": self.flops,
                "knobs": dict(self.knobs), "origin": self.origin, "source_file": f"dsl/{self.name}.wpl",
                "calls": self.calls}


class CompiledModel:
    def __init__(
        self,
        library,
        program: Program,
        constants: Mapping[str, np.ndarray],
        kernels: list[KernelInfo],
        metadata: Mapping[str, Any],
        library_path: str | None = None,
        executable=None,
        vendor_regions: Mapping[str, Any] | None = None,
        model_onnx: bytes | None = None,
    ) -> None:
        self.library = library
        self.program = program
        self.constants = dict(constants)
        self.kernels = kernels
        self.metadata = dict(metadata)
        # region of each vendor call chosen by the planner (woodpecker.planner.regions.Region), by call name
        self.vendor_regions = dict(vendor_regions or {})
        # the original model, kept only when the planner chose onnxruntime for the whole model
        self.model_onnx = model_onnx
        self._library_path = library_path
        self._executable = executable  # kept to export the library when saving
        self._executor: Executor | None = None
        self._whole_session = None
        # the whole builds the planner compared (name -> CompiledModel), in memory only; empty when not planned
        self.plan_candidates: dict[str, CompiledModel] = {}

    def with_plan(self, program: Program, constants: Mapping[str, np.ndarray], metadata: Mapping[str, Any],
                  vendor_regions: Mapping[str, Any], model_onnx: bytes | None = None) -> CompiledModel:
        """The same kernels with the planner's program (vendor calls in place of some kernels, or the whole model
        in onnxruntime when `model_onnx` is given)."""
        return CompiledModel(self.library, program, constants, self.kernels, metadata, self._library_path,
                             self._executable, vendor_regions, model_onnx)

    @property
    def whole_model_vendor(self) -> str:
        """"onnxruntime" when the plan runs the whole model in onnxruntime (it was faster), else ""."""
        return str((self.metadata.get("plan") or {}).get("model", {}).get("chosen", "")) if self.model_onnx else ""

    # -- running -------------------------------------------------------------------------------------------------
    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = Executor(self.library, self.program, self.constants, self.vendor_regions)
        return self._executor

    def _session(self):
        if self._whole_session is None:
            from woodpecker import config
            from woodpecker.runtime.vendors import ort_session

            self._whole_session = ort_session(self.model_onnx, config.get().num_threads)  # type: ignore[arg-type]
        return self._whole_session

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.program.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.program.outputs

    def _vendor_feed(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs validated as the executor validates them (names, shapes, dtypes; a float array for a float16
        input rounded to float16) and handed to onnxruntime in the model's declared types."""
        checked = validate_inputs(self.program, inputs)
        return {t.name: t.to_user(checked[t.name]) for t in self.program.inputs}

    def run(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run once. `inputs` maps input names to arrays (a bare array is accepted for single-input models)."""
        if isinstance(inputs, np.ndarray):
            if len(self.program.inputs) != 1:
                from woodpecker.errors import InputError

                raise InputError(f"the model has {len(self.program.inputs)} inputs; pass a dict name -> array")
            inputs = {self.program.inputs[0].name: inputs}
        if self.whole_model_vendor == "onnxruntime":
            outs = self._session().run(None, self._vendor_feed(inputs))
            return {t.name: o for t, o in zip(self.program.outputs, outs, strict=True)}
        return self.executor.run(inputs)

    def runner(self, inputs: Mapping[str, np.ndarray]):
        """Set the inputs; returns a function that runs the model once on them (outputs stay in place).

        This is what benchmarks time: the model's work without the input copy-in and output copy-out."""
        self.executor.set_inputs(inputs)
        if self.whole_model_vendor == "onnxruntime":
            session, feed = self._session(), self._vendor_feed(inputs)
            return lambda: session.run(None, feed)
        return self.executor.execute

    def benchmark(self, inputs: Mapping[str, np.ndarray] | None = None, repeat: int = 50, warmup: int = 5) -> dict:
        """Latency with inputs in place: median and spread in milliseconds."""
        import time

        run = self.runner(inputs if inputs is not None else self.random_inputs())
        for _ in range(warmup):
            run()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
        return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "repeat": repeat}

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {}
        for t in self.program.inputs:
            if t.dtype.startswith("float"):
                out[t.name] = rng.standard_normal(t.shape).astype(t.dtype)
            elif t.dtype == "bool":
                out[t.name] = rng.integers(0, 2, t.shape).astype(bool)
            else:
                out[t.name] = rng.integers(0, 2, t.shape).astype(t.dtype)
            if t.narrow:
                out[t.name] = t.to_user(out[t.name])  # the declared type (float16, int4...), as run() takes it
        return out

    # -- inspection ----------------------------------------------------------------------------------------------
    def dsl(self) -> str:
        """The DSL program of every kernel, in execution order of first use."""
        return "\n".join(f"# {k.name}  ({k.family}, {k.calls} call(s), schedule: {k.origin})\n{k.source}" for k in self.kernels)

    @property
    def gflop(self) -> float:
        return sum(k.flops * k.calls for k in self.kernels) / 1e9

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        from woodpecker.runtime.artifact import save_artifact

        save_artifact(self, path)

    @property
    def backend(self) -> str:
        """How the artifact's kernels run: "host" (a native library for this kind of machine)."""
        return "host"

    def payload_files(self) -> dict[str, bytes]:
        """The artifact files that hold the kernels: the exported native library."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "kernels.so")
            self.export_library(path)
            with open(path, "rb") as f:
                return {"kernels.so": f.read()}

    def export_library(self, path: str) -> None:
        if self._executable is not None:
            self._executable.export_library(path)
        elif self._library_path is not None:
            import shutil

            shutil.copyfile(self._library_path, path)
        else:
            self.library.export_library(path)
