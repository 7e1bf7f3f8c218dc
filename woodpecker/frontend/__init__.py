"""Frontends: ONNX (file or ModelProto) and PyTorch (exported through torch.onnx) into the graph IR."""

from woodpecker.frontend.onnx import import_onnx, load_onnx_model

__all__ = ["import_onnx", "load_onnx_model"]
