"""What a user hands woodpecker -> ONNX: an .onnx path or ModelProto passes through, a torch.nn.Module is exported."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from woodpecker.errors import ModelLoadError
from woodpecker.ir.graph import Graph


def as_onnx(model: Any, example_inputs: Any = None) -> Any:
    """A torch.nn.Module becomes an onnx.ModelProto (exported with example_inputs); other models pass through."""
    if not isinstance(model, (str, os.PathLike)) and type(model).__name__ != "ModelProto":
        from woodpecker.frontend.torch import export_torch, is_torch_module

        if is_torch_module(model):
            if example_inputs is None:
                raise ModelLoadError(f"compiling {type(model).__name__} needs example_inputs=(tensor, ...)")
            return export_torch(model, example_inputs)
    return model


def import_model(model: Any, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 example_inputs: Any = None) -> Graph:
    """ONNX file path, onnx.ModelProto, or torch.nn.Module (with example_inputs) -> Graph."""
    from woodpecker.frontend.onnx import import_onnx

    return import_onnx(as_onnx(model, example_inputs), input_shapes)
