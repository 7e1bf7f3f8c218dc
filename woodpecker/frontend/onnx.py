"""ONNX frontend: ModelProto (or a file path) -> woodpecker Graph, with static shapes and constants folded.

Each ONNX node is converted by a handler in `onnx_ops` that emits canonical ops through a GraphBuilder. Anything
computable at compile time (Shape, ConstantOfShape, Gather on constants, shape arithmetic) is folded as it is
imported, so that Reshape targets and Slice bounds are known. ONNX's own shape inference cross-checks the result.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from woodpecker.errors import ModelLoadError, ShapeError, UnsupportedOpError, WoodpeckerError
from woodpecker.ir.builder import GraphBuilder
from woodpecker.ir.graph import Graph, TensorType

log = logging.getLogger("woodpecker.frontend")

MIN_OPSET, MAX_OPSET = 1, 28
# Operator versions are checked node by node (`_check_op_version`). An operator version older than the one in force
# at opset 6 is refused: the v1 forms carry `consumed_inputs` and legacy semantics the handlers do not implement.
# Opset 6 forms are read (legacy `broadcast`/`axis` attributes of the binary ops, BatchNormalization's `spatial`).
OLDEST_OPSET = 6
# The handlers follow the operator versions up to opset 22, and these later ones: they only add element types that
# woodpecker does not take (float4e2m1, float8e8m0, int2/uint2, float6; float16/bfloat16 for Range-27) or
# attributes that only apply to them (Cast's round_mode), or are operators new since (Swish-24), or whose change the
# handler reads (Mod-28 defines fmod=0 on floats, SpaceToDepth-28 adds `mode`). A newer version of any other
# operator is refused until its handler has been checked against it.
REVIEWED_VERSIONS: dict[str, tuple[int, ...]] = {
    "Cast": (23, 24, 25, 28), "CastLike": (23, 24, 25), "Range": (27,), "Swish": (24,), "Celu": (28,), "Mod": (28,),
    "DepthToSpace": (28,), "SpaceToDepth": (28,), "ReduceLogSum": (28,), "ReduceLogSumExp": (28,),
    **{op: (23, 24, 25) for op in ("Constant", "ConstantOfShape", "Flatten", "Identity", "Pad", "Reshape", "Shape",
                                   "Size", "Squeeze", "Transpose", "Unsqueeze")},
}
NEWEST_REVIEWED_OPSET = 22

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
# Run-time (non-constant) tensors must be one of these (every numpy type TVM computes in natively: not float16).
RUNTIME_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "bool")


def load_onnx_model(model: str | os.PathLike[str] | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Read a model file (or pass a ModelProto through); returns the model and a label for messages."""
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "<model>"
    path = pathlib.Path(model)
    label = str(path)
    if not path.exists():
        raise ModelLoadError(f"{label}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{label}: is a directory, expected an .onnx file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{label}: file is empty")
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # protobuf raises DecodeError; external data raises OSError/ValidationError
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelLoadError(f"{label}: not a readable ONNX model ({first})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{label}: not an ONNX model (no graph found; truncated or a different file type?)")
    return proto, label


class ImportContext:
    """State while converting one ONNX graph: maps ONNX value names to woodpecker value names."""

    def __init__(self, builder: GraphBuilder, opset: int, label: str) -> None:
        self.b = builder
        self.opset = opset
        self.label = label
        self.values: dict[str, str] = {}
        self.node: onnx.NodeProto | None = None

    # -- access to the inputs of the current node -----------------------------------------------------------------
    def has_input(self, node: onnx.NodeProto, i: int) -> bool:
        return len(node.input) > i and node.input[i] != ""

    def value(self, onnx_name: str) -> str:
        try:
            return self.values[onnx_name]
        except KeyError:
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


def _resolve_input_type(
    vi: onnx.ValueInfoProto, overrides: Mapping[str, Sequence[int]], label: str
) -> TensorType:
    tt = vi.type.tensor_type
    dtype = ONNX_DTYPES.get(tt.elem_type)
    if dtype is None or dtype not in RUNTIME_DTYPES:
        name = onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type else "undefined"
        raise UnsupportedOpError(f"{label}: input {vi.name!r} has element type {name}, which is not supported")
    if vi.name in overrides:
        shape = tuple(int(d) for d in overrides[vi.name])
        if tt.HasField("shape") and len(tt.shape.dim) != len(shape):
            raise ShapeError(f"{label}: input {vi.name!r} has rank {len(tt.shape.dim)}, override gives {len(shape)}")
        return TensorType(shape, dtype)
    if not tt.HasField("shape"):
        raise ShapeError(f"{label}: input {vi.name!r} has no shape; pass input_shapes={{{vi.name!r}: [...]}}")
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))  # 0 included: an empty tensor is a valid input
        else:
            # A symbolic (batch) dimension: compile for 1, which is what inference serving of one request needs.
            log.warning("%s: input %r dimension %r is symbolic; using 1", label, vi.name, d.dim_param or "?")
            dims.append(1)
    return TensorType(tuple(dims), dtype)


def import_onnx(
    model: str | os.PathLike[str] | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Graph:
    """Convert an ONNX model into a Graph with static shapes. Raises a one-line WoodpeckerError on bad input."""
    from woodpecker.frontend.onnx_ops import HANDLERS

    proto, label = load_onnx_model(model)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ModelLoadError(f"{label}: the model imports no default-domain opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedOpError(f"{label}: opset {opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
    graph = proto.graph
    overrides = dict(input_shapes or {})
    unknown = set(overrides) - {vi.name for vi in graph.input}
    if unknown:
        raise ShapeError(f"{label}: input_shapes names unknown inputs {sorted(unknown)}")

    builder = GraphBuilder(name=graph.name or pathlib.Path(label).stem or "model")
    ctx = ImportContext(builder, opset, label)
    initializer_names = {init.name for init in graph.initializer}
    exact = True  # every input shape is the declared static one, so ONNX's own inference is comparable
    # Inputs first: they keep the user's names (the keys of `run({...})`), so the sanitized names given to
    # initializers must avoid them (an initializer "a.b" would otherwise become "a_b" and shadow an input "a_b").
    for vi in graph.input:
        if vi.name in initializer_names:
            continue  # old exporters list weights as inputs too
        ttype = _resolve_input_type(vi, overrides, label)
        declared = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        exact &= list(ttype.shape) == declared
        ctx.values[vi.name] = builder.add_input(vi.name, ttype)
    for init in graph.initializer:
        try:
            array = numpy_helper.to_array(init)
        except Exception as err:
            raise ModelLoadError(f"{label}: initializer {init.name!r} cannot be read ({err})") from None
        ctx.values[init.name] = builder.constant(array, init.name)

    for node in graph.node:
        ctx.node = node
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(
                f"unsupported operator {node.domain}.{node.op_type} (node {node.name!r}, opset {opset})"
            )
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise UnsupportedOpError(f"unsupported operator {node.op_type} (node {node.name!r}, opset {opset})")
        _check_op_version(node, opset)
        try:
            results = handler(ctx, node, attributes(node))
        except WoodpeckerError:
            raise
        except (ValueError, IndexError, KeyError, TypeError) as err:
            raise UnsupportedOpError(
                f"{node.op_type} node {node.name!r} (opset {opset}) cannot be imported: {err}"
            ) from err
        for onnx_name, value in zip(node.output, results):
            if onnx_name and value is not None:
                ctx.values[onnx_name] = value
        for k, onnx_name in enumerate(node.output):
            if onnx_name and onnx_name not in ctx.values:
                raise ctx.fail(node, f"output {k} ({onnx_name!r}) is not supported")

    outputs, output_names = [], []
    for vi in graph.output:
        value = ctx.value(vi.name)
        if builder.is_constant(value) or value in builder.inputs or value in outputs:
            # The runtime writes each graph output into its own buffer; give a constant or aliased output one.
            value = _materialize(builder, value)
        outputs.append(value)
        output_names.append(vi.name)
    result = builder.build(outputs, output_names)
    # ONNX's shape inference gives a ceil_mode pooling one window too many where the last window would start in
    # the end padding; the spec, ONNX's reference implementation and onnxruntime drop that window (as we do).
    exact &= not any(
        n.op_type in ("MaxPool", "AveragePool") and any(a.name == "ceil_mode" and a.i for a in n.attribute)
        for n in graph.node
    )
    if exact:
        _cross_check_shapes(proto, ctx, result, label)
    return result


def _check_op_version(node: onnx.NodeProto, opset: int) -> None:
    """Refuse a node whose operator version (the one in force at the model's opset) the handler does not read."""
    try:
        since = onnx.defs.get_schema(node.op_type, opset, "").since_version
    except onnx.defs.SchemaError:
        return  # not an operator of this opset at all: ONNX's checker and the handler report it
    where = f"{node.op_type} node {node.name!r} (opset {opset})"
    if since < OLDEST_OPSET and onnx.defs.get_schema(node.op_type, OLDEST_OPSET, "").since_version != since:
        raise UnsupportedOpError(f"{where}: operator version {since} predates opset {OLDEST_OPSET}, the oldest "
                                 "woodpecker reads; convert the model with onnx.version_converter")
    if since > NEWEST_REVIEWED_OPSET and since not in REVIEWED_VERSIONS.get(node.op_type, ()):
        raise UnsupportedOpError(f"{where}: operator version {since} is newer than woodpecker reads "
                                 f"(up to opset {NEWEST_REVIEWED_OPSET})")


def _materialize(builder: GraphBuilder, value: str) -> str:
    fold, builder.fold = builder.fold, False
    try:
        return builder.emit1("identity", [value])
    finally:
        builder.fold = fold


def _cross_check_shapes(proto: onnx.ModelProto, ctx: ImportContext, graph: Graph, label: str) -> None:
    """Compare our inferred output shapes with ONNX's shape inference, where ONNX knows them."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # ONNX inference gives up on some valid models; ours is authoritative
        return
    for vi in inferred.graph.output:
        dims = vi.type.tensor_type.shape.dim
        if not dims or any(not d.HasField("dim_value") for d in dims):
            continue
        value = ctx.values.get(vi.name)
        if value is None or value not in graph.types:
            continue
        ours = graph.types[value].shape
        theirs = tuple(int(d.dim_value) for d in dims)
        if ours != theirs:
            raise ShapeError(f"{label}: output {vi.name!r} has shape {list(ours)} here but ONNX infers {list(theirs)}")
