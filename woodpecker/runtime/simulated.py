"""SimulatedModel: a model compiled for a simulated RISC-V/MCU target, run under qemu on this machine.

It holds one object file per kernel (compiled for the profile's TVM target) and the program; `run` links them
with a generated C entry point (the same model.c a firmware project would link) and runs the image under qemu
with the counting plugin, returning the outputs and, in `last_run`, the cycle model's estimate of the device time.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from woodpecker.errors import TargetError
from woodpecker.runtime.compiled import CompiledModel, KernelInfo
from woodpecker.runtime.executor import Program


class SimulatedModel(CompiledModel):
    def __init__(self, program: Program, constants: Mapping[str, np.ndarray], kernels: list[KernelInfo],
                 metadata: Mapping[str, Any], objects: Mapping[str, pathlib.Path], profile_id: str,
                 model_onnx: bytes | None = None) -> None:
        super().__init__(None, program, constants, kernels, metadata)
        self.objects = {k: pathlib.Path(v) for k, v in objects.items()}  # kernel name -> object file
        self.profile_id = profile_id
        self.reference_onnx = model_onnx  # the source model, to compare the simulation with the host
        self.last_run = None  # ModelRunResult of the latest run: counts, cycles, estimated seconds

    @property
    def backend(self) -> str:
        return "riscv"

    @property
    def executor(self):
        raise TargetError(f"a model compiled for {self.profile_id} runs under the simulator, not the host executor")

    def run(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        from woodpecker.sim.riscv.model import run_model

        if isinstance(inputs, np.ndarray):
            inputs = {self.program.inputs[0].name: inputs}
        needed = [self.objects[c.func] for c in self.program.calls]
        self.last_run = run_model(self.program, self.constants, sorted(set(needed)), inputs, self.profile_id)
        return dict(self.last_run.outputs)

    def runner(self, inputs: Mapping[str, np.ndarray]):
        raise TargetError(f"{self.profile_id} is simulated: its latency is the cycle model's estimate "
                          "(`benchmark`), not a wall-clock time on this machine")

    def benchmark(self, inputs: Mapping[str, np.ndarray] | None = None, repeat: int = 1, warmup: int = 0) -> dict:
        """The simulated device time of one run (deterministic: repeats add nothing)."""
        self.run(inputs if inputs is not None else self.random_inputs())
        est_ms = self.last_run.seconds * 1e3
        return {"median_ms": est_ms, "min_ms": est_ms, "max_ms": est_ms, "repeat": 1, "simulated": True,
                "cycles": self.last_run.cycles}

    def payload_files(self) -> dict[str, bytes]:
        """Files of the artifact: kernel objects and the firmware sources (model.c, model.h, weights)."""
        import tempfile

        from woodpecker.sim.riscv.model import write_model_sources

        files = {f"riscv/{name}.o": path.read_bytes() for name, path in self.objects.items()}
        with tempfile.TemporaryDirectory() as tmp:
            src = write_model_sources(self.program, self.constants, tmp)
            for p in (src.model_c, src.model_h, src.weights_s, src.weights_bin):
                files[f"riscv/{pathlib.Path(p).name}"] = pathlib.Path(p).read_bytes()
        if self.reference_onnx is not None:
            files["reference/model.onnx"] = self.reference_onnx
        return files
