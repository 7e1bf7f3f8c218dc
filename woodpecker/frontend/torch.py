"""PyTorch frontend: a torch.nn.Module and example inputs, exported to ONNX by torch.onnx, then imported.

torch is an optional dependency (`pip install woodpecker[torch]`); it is imported only here.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import onnx

from woodpecker.errors import ModelLoadError

OPSET = 17


def is_torch_module(obj: Any) -> bool:
    mod = type(obj).__module__
    return mod.startswith("torch") or any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)


def export_torch(module: Any, example_inputs: Sequence[Any] | Any, input_names: Sequence[str] | None = None) -> onnx.ModelProto:
    try:
        import torch
    except ImportError:
        raise ModelLoadError("compiling a torch.nn.Module needs PyTorch: pip install 'woodpecker[torch]'") from None
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    names = list(input_names or [f"input{i}" if len(example_inputs) > 1 else "input" for i in range(len(example_inputs))])
    module = module.eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(module, example_inputs, buf, input_names=names, opset_version=OPSET, dynamo=False)
    except Exception as err:
        raise ModelLoadError(f"torch.onnx.export failed for {type(module).__name__}: {str(err).splitlines()[0]}") from None
    return onnx.load_from_string(buf.getvalue())
