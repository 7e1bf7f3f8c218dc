"""Implementations of one region, behind one interface: bind to buffers, then call.

    choice.bind(inputs, out) -> run()     # inputs/out: numpy views of the executor's arena (no copies)

(woodpecker's own kernel, planner.choices.GeneratedChoice, binds the same way.) OrtChoice is an onnxruntime session (I/O binding straight onto the arena);
TorchChoice PyTorch's CPU kernels (oneDNN, MKL) on tensors that share the arena's memory; NumpyChoice the numpy
reference (BLAS for dense layers). A vendor that cannot express the region raises NotExportable at construction.

On a device (a GPU target's DeviceExecutor), the buffers are device tensors and the one vendor is PyTorch on that
device (TorchDeviceChoice: cuDNN convolutions, cuBLAS GEMMs), sharing the buffers through DLPack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from woodpecker.ir.interpreter import run_nodes
from woodpecker.runtime.vendors.export_onnx import NotExportable, export_region
from woodpecker.runtime.region import Region

VENDORS = ("onnxruntime", "torch", "numpy")
DEVICE_VENDORS = ("torch",)  # on a GPU: cuDNN and cuBLAS through PyTorch


def ort_session(model_bytes: bytes, threads: int, spinning: bool = True):
    """An onnxruntime CPU session with all graph optimizations and the given intra-op threads.

    spinning=False for sessions that share the process with TVM's kernels (a planned model): onnxruntime's
    workers otherwise keep spinning after each call and steal the cores the next generated kernel needs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


class OrtChoice:
    name = "onnxruntime"

    def __init__(self, region: Region, constants: Mapping[str, np.ndarray], threads: int) -> None:
        model = export_region(region.body, region.inputs, region.output, region.types, constants)
        self.onnx_bytes = model.SerializeToString()
        self.session = ort_session(self.onnx_bytes, threads, spinning=False)

    def bind(self, inputs: Sequence[np.ndarray], out: np.ndarray) -> Callable[[], None]:
        binding = self.session.io_binding()
        for i, arr in enumerate(inputs):
            binding.bind_input(f"in{i}", "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        binding.bind_output("out", "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
        session = self.session
        keep = (inputs, out)  # the binding holds raw pointers: the closure keeps the arrays alive

        def run() -> None:
            session.run_with_iobinding(binding)

        run.keep = keep  # type: ignore[attr-defined]
        return run


class TorchChoice:
    name = "torch"

    def __init__(self, region: Region, constants: Mapping[str, np.ndarray], threads: int) -> None:
        import os
        import sys

        if "torch" not in sys.modules:
            # torch's OpenMP workers spin 200 ms after each op by default, starving TVM's kernels in the same
            # process; passive waiting only holds if set before torch loads OpenMP
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import torch

        from woodpecker.runtime.vendors.torch_ops import build_region_fn

        torch.set_num_threads(threads)
        self.fn = build_region_fn(region.body, region.inputs, region.output, region.types,
                                  {k: constants[k] for k in region.constant_names})
        self.torch = torch

    def bind(self, inputs: Sequence[np.ndarray], out: np.ndarray) -> Callable[[], None]:
        torch = self.torch
        ts = [torch.from_numpy(a) for a in inputs]
        o = torch.from_numpy(out)
        fn = self.fn

        def run() -> None:
            with torch.no_grad():
                o.copy_(fn(*ts))

        return run


class NumpyChoice:
    name = "numpy"

    def __init__(self, region: Region, constants: Mapping[str, np.ndarray], threads: int) -> None:
        anchors = {n.op for n in region.body}
        if not anchors & {"dense", "dense_packed", "batch_matmul"}:
            # numpy is a real contender only where it calls BLAS; elsewhere it is the slow reference
            raise NotExportable("numpy is offered for dense and matmul regions only")
        self.region = region
        self.constants = {k: constants[k] for k in region.constant_names}

    def bind(self, inputs: Sequence[np.ndarray], out: np.ndarray) -> Callable[[], None]:
        region, consts = self.region, self.constants

        def run() -> None:
            env = dict(consts)
            env.update(zip(region.inputs, inputs))
            run_nodes(region.body, env)
            np.copyto(out, env[region.output].reshape(out.shape))

        return run


class TorchDeviceChoice:
    """PyTorch on a TVM device's memory: on CUDA, cuDNN convolutions and cuBLAS GEMMs (cudnn.benchmark on, so cuDNN
    picks its fastest algorithm per shape, as a tuned PyTorch deployment would).

    The executor's buffers are shared with torch through DLPack, without copies. Ordering: TVM launches its
    kernels on the device's default stream, and each vendor call runs torch on that same stream (whatever stream
    the caller made current), so a vendor call sees its producer's output and its consumer sees the vendor's.
    Precision: TF32 is turned off (torch allows it for cuDNN convolutions on Ampere and later), so the vendor
    computes in float32 like the generated kernels and is compared with them on equal terms."""

    name = "torch"

    def __init__(self, region: Region, constants: Mapping[str, np.ndarray], device: str) -> None:
        import torch

        from woodpecker.runtime.vendors.torch_ops import build_region_fn

        if device.startswith("cuda"):
            cuda_fp32_settings(torch)
        self.device = device
        self.fn = build_region_fn(region.body, region.inputs, region.output, region.types,
                                  {k: constants[k] for k in region.constant_names}, device=device)
        self.torch = torch

    def bind(self, inputs: Sequence, out) -> Callable[[], None]:
        """inputs, out: tensors on the device (TVM tensors or anything else with __dlpack__)."""
        torch = self.torch
        ts = [torch.from_dlpack(a) for a in inputs]
        o = torch.from_dlpack(out)
        fn = self.fn
        if o.is_cuda:
            stream = torch.cuda.default_stream(o.device)

            def run() -> None:
                with torch.no_grad(), torch.cuda.stream(stream):
                    o.copy_(fn(*ts).reshape(o.shape))
        else:
            def run() -> None:
                with torch.no_grad():
                    o.copy_(fn(*ts).reshape(o.shape))

        run.keep = (inputs, out)  # type: ignore[attr-defined]  # the DLPack views borrow these tensors' memory
        return run


def cuda_fp32_settings(torch) -> None:
    """cuDNN in true float32 (no TF32), and its per-shape algorithm search on (cudnn.benchmark), as a tuned
    float32 PyTorch deployment runs. These are process-wide torch settings."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def make_device_vendor(kind: str, region: Region, constants: Mapping[str, np.ndarray], device: str):
    """A vendor choice on a device (`device`: a torch device name such as "cuda:0" or "cpu:0")."""
    if kind not in DEVICE_VENDORS:
        raise NotExportable(f"{kind} does not run on {device}; device vendors: {', '.join(DEVICE_VENDORS)}")
    return TorchDeviceChoice(region, constants, device)


def make_vendor(kind: str, region: Region, constants: Mapping[str, np.ndarray], threads: int):
    cls = {"onnxruntime": OrtChoice, "torch": TorchChoice, "numpy": NumpyChoice}[kind]
    return cls(region, constants, threads)
