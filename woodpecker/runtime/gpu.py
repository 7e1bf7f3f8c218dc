"""GpuModel: a model compiled for a GPU profile: one TVM library whose host part launches CUDA kernels.

In TVM 0.27 `tvm.compile` for a `cuda` target stores the kernels' CUDA *source* in the library; it is compiled
to a device binary when the library is loaded on a machine with a GPU (by NVRTC when cuda-bindings is installed,
else by nvcc: `TVM_CUDA_COMPILE_MODE=nvcc`). So compiling for a GPU needs no GPU and no CUDA toolkit, and the
artifact (backend "cuda") holds:

    kernels.so        the host module (argument checks, launch geometry) with the CUDA source embedded
    cuda/kernels.cu   the same CUDA source, for reading and for checking it with nvcc offline

Running needs an NVIDIA GPU: each value of the program has its own device allocation (a reshape is a view of
its source's), inputs are copied in and outputs copied out.
Without a GPU, `woodpecker.load` still opens the artifact (inspection, `dsl()`), and `run` says why it cannot run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.errors import BuildError, TargetError
from woodpecker.runtime.compiled import CompiledModel, KernelInfo
from woodpecker.runtime.executor import Program, profile_calls, program_lifetimes, validate_inputs
from woodpecker.runtime.memory import plan_buffers

CUDA_SOURCE = "cuda/kernels.cu"


class DeviceExecutor:
    """Runs a Program's kernels on a TVM device (any: CUDA here, the CPU in tests).

    Vendor calls (the planner's choice of PyTorch for a region: cuDNN / cuBLAS on CUDA) run torch on the same
    device buffers, shared through DLPack."""

    on_device = True  # calls return before the device is done: timing waits for it (sync)

    def __init__(self, library, program: Program, constants: Mapping[str, np.ndarray], device,
                 vendor_regions: Mapping[str, Any] | None = None) -> None:
        import tvm

        self.program = program
        self.device = device
        # One buffer per group of values with disjoint lifetimes, each value at offset 0 of its buffer, not one
        # arena: TVM's kernels require byte_offset 0 on every argument, and a view into an arena has one. Views
        # (reshapes) of a value share its root's buffer.
        self.memory = plan_buffers(*program_lifetimes(program, constants))
        self._buffers = [tvm.runtime.empty((n,), "uint8", device) for n in self.memory.buffer_bytes]
        self._constants = {k: np.require(v, requirements="C") for k, v in constants.items()}
        const_tensors: dict[tuple[str, tuple[int, ...]], Any] = {}

        def bind(value: str, shape: Sequence[int]):
            shape = tuple(int(s) for s in shape)
            if value in self._constants:
                key = (value, shape)
                if key not in const_tensors:
                    const_tensors[key] = tvm.runtime.tensor(self._constants[value].reshape(shape), device)
                return const_tensors[key]
            return self.view(value, shape)

        self._calls = []
        for c in program.calls:
            if c.vendor:
                self._calls.append(self._bind_vendor(c, vendor_regions or {}))
                continue
            func = library.get_function(c.func) if hasattr(library, "get_function") else library[c.func]
            self._calls.append((func, tuple(bind(v, s) for v, s in c.args)))
        self._inputs = {t.name: (t, self.view(t.name, t.shape)) for t in program.inputs}
        self._outputs = [(spec, v) for spec, v in zip(program.outputs, program.output_values)]

    def view(self, value: str, shape: Sequence[int]):
        """A device tensor over the value's storage, with the given shape."""
        storage = self._buffers[self.memory.buffer_of[self.memory.root[value]]]
        return storage._create_view(tuple(int(s) for s in shape), self.program.values[value][1])

    @property
    def torch_device(self) -> str:
        return str(self.device)  # "cuda:0", "cpu:0": TVM and torch spell devices alike

    def _bind_vendor(self, call, regions: Mapping[str, Any]):
        from woodpecker.runtime.vendors import make_device_vendor
        from woodpecker.runtime.vendors.export_onnx import NotExportable

        if call.func not in regions:
            raise TargetError(f"vendor call {call.func} has no region")
        try:
            impl = make_device_vendor(call.vendor, regions[call.func], self._constants, self.torch_device)
        except NotExportable as err:
            raise TargetError(f"vendor call {call.func}: {err}") from None
        except Exception as err:  # noqa: BLE001 - e.g. torch missing or without CUDA where the artifact is loaded
            raise TargetError(f"vendor call {call.func} ({call.vendor} on {self.torch_device}) cannot be set up "
                              f"here: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
        *ins, (out, out_shape) = call.args
        return (impl.bind([self.view(v, s) for v, s in ins], self.view(out, out_shape)), ())

    # -- what the planner needs of any executor (woodpecker.planner.plan) ------------------------------------------
    def scratch(self, shape: Sequence[int], dtype: str):
        import tvm

        return tvm.runtime.empty(tuple(int(s) for s in shape), dtype, self.device)

    @staticmethod
    def to_host(value) -> np.ndarray:
        return value.numpy() if hasattr(value, "numpy") else np.asarray(value)

    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        for name, value in validate_inputs(self.program, inputs).items():
            self._inputs[name][1].copyfrom(value)

    def execute(self) -> None:
        for func, args in self._calls:
            func(*args)

    def sync(self) -> None:
        self.device.sync()

    def get_outputs(self) -> dict[str, np.ndarray]:
        out = {}
        for spec, value in self._outputs:
            if value in self._constants:
                out[spec.name] = spec.to_user(np.array(self._constants[value].reshape(spec.shape), copy=True))
            else:
                out[spec.name] = spec.to_user(self.view(value, spec.shape).numpy())
        return out

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.set_inputs(inputs)
        self.execute()
        self.sync()
        return self.get_outputs()

    def profile(self, repeat: int = 20) -> list[tuple[str, float]]:
        """Median seconds of each call, in call order (inputs already set); each call waits for the device."""
        self.execute()
        self.sync()
        return profile_calls(self.program, self._calls, repeat, wait=self.sync)


class GpuModel(CompiledModel):
    """A model for a GPU profile. The library is loaded (and its CUDA source compiled) on the first run."""

    def __init__(self, program: Program, constants: Mapping[str, np.ndarray], kernels: list[KernelInfo],
                 metadata: Mapping[str, Any], library_path: str, cuda_source: str, executable=None,
                 vendor_regions: Mapping[str, Any] | None = None) -> None:
        super().__init__(None, program, constants, kernels, metadata, library_path=library_path,
                         executable=executable, vendor_regions=vendor_regions)
        self.cuda_source = cuda_source
        self._device_executor: DeviceExecutor | None = None

    def with_plan(self, program: Program, constants: Mapping[str, np.ndarray], metadata: Mapping[str, Any],
                  vendor_regions: Mapping[str, Any], model_onnx: bytes | None = None) -> GpuModel:
        if model_onnx is not None:
            raise TargetError("a GPU model cannot hand the whole model to onnxruntime's CPU session")
        return type(self)(program, constants, self.kernels, metadata, str(self._library_path), self.cuda_source,
                          self._executable, vendor_regions)

    @property
    def backend(self) -> str:
        return "cuda"

    @property
    def profile_id(self) -> str:
        return str(self.metadata.get("target", {}).get("profile", "gpu"))

    @property
    def executor(self) -> DeviceExecutor:  # type: ignore[override]
        if self._device_executor is None:
            library, device = self._load()
            self._device_executor = DeviceExecutor(library, self.program, self.constants, device, self.vendor_regions)
        return self._device_executor

    def _load(self):
        import tvm

        # the runtime-only helpers: woodpecker.measure.cuda would import the DSL parser, absent on a kit machine
        from woodpecker.runtime.cuda_load import cuda_compiler, device_arch, gpu_available, install_callback

        if not gpu_available():
            raise TargetError(
                f"this model is compiled for the GPU profile {self.profile_id}: running it needs an NVIDIA GPU, and "
                f"none is visible here (its CUDA source is {CUDA_SOURCE} in the artifact; `dsl()` shows the kernels)"
            )
        compiler = cuda_compiler()
        if compiler is None:
            raise TargetError("loading CUDA kernels needs a CUDA compiler: install cuda-bindings (NVRTC) or put "
                              "nvcc on the PATH")
        from woodpecker import config

        binary_dir = config.get().cache_dir / "builds-cuda" / "binaries"
        os.makedirs(binary_dir, exist_ok=True)
        # the source is compiled for the attached device's architecture, whatever the profile says
        install_callback(str(binary_dir), compiler, device_arch())
        assert self._library_path is not None
        return tvm.runtime.load_module(self._library_path), tvm.cuda(0)

    def runner(self, inputs: Mapping[str, np.ndarray]):
        """Inputs copied in once; the returned function runs every kernel and waits for the device."""
        ex = self.executor
        ex.set_inputs(inputs)

        def run_once() -> None:
            ex.execute()
            ex.sync()

        return run_once

    def payload_files(self) -> dict[str, bytes]:
        files = super().payload_files()  # kernels.so: host module + CUDA source
        files[CUDA_SOURCE] = self.cuda_source.encode()
        return files
