"""CompiledModel: a compiled, runnable model (native library + program + weights), savable as a .wpk artifact."""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np

from woodpecker.runtime.executor import Executor, Program, TensorSpec


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
    ) -> None:
        self.library = library
        self.program = program
        self.constants = dict(constants)
        self.kernels = kernels
        self.metadata = dict(metadata)
        self._library_path = library_path
        self._executable = executable  # kept to export the library when saving
        self._executor: Executor | None = None

    # -- running -------------------------------------------------------------------------------------------------
    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = Executor(self.library, self.program, self.constants)
        return self._executor

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.program.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.program.outputs

    def run(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run once. `inputs` maps input names to arrays (a bare array is accepted for single-input models)."""
        if isinstance(inputs, np.ndarray):
            if len(self.program.inputs) != 1:
                from woodpecker.errors import InputError

                raise InputError(f"the model has {len(self.program.inputs)} inputs; pass a dict name -> array")
            inputs = {self.program.inputs[0].name: inputs}
        return self.executor.run(inputs)

    def benchmark(self, inputs: Mapping[str, np.ndarray] | None = None, repeat: int = 50, warmup: int = 5) -> dict:
        """Latency of the kernels with inputs in place: median and spread in milliseconds."""
        if inputs is None:
            inputs = self.random_inputs()
        self.executor.set_inputs(inputs)
        times = [t * 1e3 for t in self.executor.time_run(repeat, warmup)]
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

    def export_library(self, path: str) -> None:
        if self._executable is not None:
            self._executable.export_library(path)
        elif self._library_path is not None:
            import shutil

            shutil.copyfile(self._library_path, path)
        else:
            self.library.export_library(path)
