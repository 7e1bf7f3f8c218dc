"""What the ONNX importer and its operator handlers share: the element-type tables and the import state
(ImportContext), in a module of their own so that the handlers (onnx_ops*.py) and the importer (onnx.py) import it
and not each other."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from woodpecker.errors import ModelLoadError, UnsupportedOpError, WoodpeckerError
from woodpecker.ir.builder import GraphBuilder
from woodpecker.ir.graph import TensorType

ONNX_DTYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.UINT16: "uint16",
    onnx.TensorProto.UINT32: "uint32",
    onnx.TensorProto.UINT64: "uint64",
    onnx.TensorProto.BOOL: "bool",
}
# Run-time (non-constant) tensors must be one of these (every numpy type TVM computes in natively). A value of a
# narrow type (float16, bfloat16, float8, int4...) is held in one of them: see woodpecker.ir.formats.
RUNTIME_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "bool")



class ImportContext:
    """State while converting one ONNX graph: maps ONNX value names to woodpecker value names."""

    def __init__(self, builder: GraphBuilder, opset: int, label: str) -> None:
        self.b = builder
        self.opset = opset
        self.label = label
        self.values: dict[str, str] = {}
        self.node: onnx.NodeProto | None = None
        # ONNX value name -> its narrow element type ("float16", "int4"...), held in the carrier type
        self.narrow: dict[str, str] = {}
        # ONNX element type of each value, from ONNX's type inference (only for models with narrow types)
        self.elem_types: dict[str, int] = {}
        # ONNX sequence value name -> its elements (woodpecker tensor values) and their element type: sequences are
        # lists fixed at compile time (frontend.onnx_ops_sequence), never run-time values
        self.sequences: dict[str, tuple[str, ...]] = {}
        self.sequence_dtypes: dict[str, str] = {}
        # ONNX value name -> the node that produced it, in import order (the Gradient handler walks back over them)
        self.producers: dict[str, onnx.NodeProto] = {}

    # -- access to the inputs of the current node -----------------------------------------------------------------
    def has_input(self, node: onnx.NodeProto, i: int) -> bool:
        return len(node.input) > i and node.input[i] != ""

    def value(self, onnx_name: str) -> str:
        try:
            return self.values[onnx_name]
        except KeyError:
            if onnx_name in self.sequences:
                where = f"{self.node.op_type} node {self.node.name!r}: " if self.node is not None else ""
                raise UnsupportedOpError(f"{self.label}: {where}value {onnx_name!r} is a sequence, where a "
                                         "tensor is expected") from None
            raise ModelLoadError(f"{self.label}: value {onnx_name!r} is used before it is defined") from None

    def input(self, node: onnx.NodeProto, i: int) -> str:
        return self.value(node.input[i])

    def const(self, node: onnx.NodeProto, i: int, what: str = "") -> np.ndarray | None:
        """The constant value of input i, or None if the input is absent."""
        if not self.has_input(node, i):
            return None
        name = self.input(node, i)
        if not self.b.is_constant(name):
            raise UnsupportedOpError(
                f"{node.op_type} node {node.name!r}: input {i} ({what or node.input[i]}) must be a constant "
                f"known at compile time (opset {self.opset})"
            )
        return self.b.constants[name]

    def type_of(self, node: onnx.NodeProto, i: int) -> TensorType:
        return self.b.type_of(self.input(node, i))

    def fail(self, node: onnx.NodeProto, message: str) -> WoodpeckerError:
        return UnsupportedOpError(f"{node.op_type} node {node.name!r} (opset {self.opset}): {message}")


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        out[attr.name] = value
    return out
