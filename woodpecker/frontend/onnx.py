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

import onnx
from onnx import numpy_helper

from woodpecker.errors import ModelLoadError, ShapeError, UnsupportedOpError, WoodpeckerError
from woodpecker.frontend.context import ONNX_DTYPES, RUNTIME_DTYPES, ImportContext, attributes  # noqa: F401
from woodpecker.frontend.narrow_types import NARROW_ONNX, after_node, element_types
from woodpecker.ir import formats
from woodpecker.ir.builder import GraphBuilder
from woodpecker.ir.graph import Graph, TensorType

log = logging.getLogger("woodpecker.frontend")

MIN_OPSET, MAX_OPSET = 1, 28
# Operator versions are checked node by node (`_check_op_version`). An operator version older than the one in force
# at opset 6 is refused: the v1 forms carry `consumed_inputs` and legacy semantics the handlers do not implement.
# Opset 6 forms are read (legacy `broadcast`/`axis` attributes of the binary ops, BatchNormalization's `spatial`).
OLDEST_OPSET = 6
# The handlers follow the operator versions up to opset 22, and these later ones: they only add element types (the
# narrow ones are held in a carrier type: frontend.narrow_types; float6 is refused) or attributes that only apply
# to them (Cast's round_mode, read for float8e8m0), or are operators new since (Swish-24), or whose change the
# handler reads (Mod-28 defines fmod=0 on floats, SpaceToDepth-28 adds `mode`). A newer version of any other
# operator is refused until its handler has been checked against it.
REVIEWED_VERSIONS: dict[str, tuple[int, ...]] = {
    "Cast": (23, 24, 25, 28), "CastLike": (23, 24, 25), "SplitToSequence": (24,), "Range": (27,), "Swish": (24,), "Celu": (28,), "Mod": (28,),
    "DepthToSpace": (28,), "SpaceToDepth": (28,), "ReduceLogSum": (28,), "ReduceLogSumExp": (28,),
    **{op: (23, 24, 25) for op in ("Constant", "ConstantOfShape", "Flatten", "Identity", "Pad", "Reshape", "Shape",
                                   "Size", "Squeeze", "Transpose", "Unsqueeze")},
}
NEWEST_REVIEWED_OPSET = 22

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


def _resolve_input_type(
    vi: onnx.ValueInfoProto, overrides: Mapping[str, Sequence[int]], label: str
) -> TensorType:
    """The input's type as woodpecker holds it (a narrow type as its carrier)."""
    if not vi.type.HasField("tensor_type"):
        kind = vi.type.WhichOneof("value") or "undefined"
        raise UnsupportedOpError(f"{label}: input {vi.name!r} is of {kind.replace('_', ' ')}; woodpecker's inputs "
                                 "are tensors")
    tt = vi.type.tensor_type
    narrow = NARROW_ONNX.get(tt.elem_type)
    dtype = formats.carrier(narrow) if narrow else ONNX_DTYPES.get(tt.elem_type)
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
    label: str | None = None,
) -> Graph:
    """Convert an ONNX model into a Graph with static shapes. Raises a one-line WoodpeckerError on bad input.

    `label`: how messages name the model (default: its file name, or the graph's name for a ModelProto)."""
    from woodpecker.frontend.handlers import HANDLERS

    proto, default_label = load_onnx_model(model)
    label = label or default_label
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
    ctx.elem_types = element_types(proto)
    narrow_io: dict[str, str] = {}  # user-facing input/output name -> its narrow type (the runtime converts)
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
        if vi.type.tensor_type.elem_type in NARROW_ONNX:
            narrow_io[vi.name] = ctx.narrow[vi.name] = NARROW_ONNX[vi.type.tensor_type.elem_type]
    for init in graph.initializer:
        try:
            array = numpy_helper.to_array(init)
        except Exception as err:
            raise ModelLoadError(f"{label}: initializer {init.name!r} cannot be read ({err})") from None
        if init.data_type in NARROW_ONNX:  # held in its carrier (exact)
            ctx.narrow[init.name] = NARROW_ONNX[init.data_type]
            array = array.astype(formats.carrier(ctx.narrow[init.name]))
        ctx.values[init.name] = builder.constant(array, init.name)

    for node in graph.node:
        ctx.node = node
        # Default-domain operators by name; the one other domain read (ai.onnx.preview.training, for Gradient) by
        # its qualified name.
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        handler = HANDLERS.get(key)
        if handler is None:
            raise UnsupportedOpError(f"unsupported operator {key} (node {node.name!r}, opset {opset})")
        _check_op_version(node, opset)
        try:
            results = after_node(ctx, node, handler(ctx, node, attributes(node)))
        except WoodpeckerError:
            raise
        except (ValueError, IndexError, KeyError, TypeError) as err:
            raise UnsupportedOpError(
                f"{node.op_type} node {node.name!r} (opset {opset}) cannot be imported: {err}"
            ) from err
        for onnx_name, value in zip(node.output, results):
            if onnx_name and value is not None:
                ctx.values[onnx_name] = value
        ctx.producers.update((onnx_name, node) for onnx_name in node.output if onnx_name)
        for k, onnx_name in enumerate(node.output):
            if onnx_name and onnx_name not in ctx.values and onnx_name not in ctx.sequences:
                raise ctx.fail(node, f"output {k} ({onnx_name!r}) is not supported")

    outputs, output_names = [], []
    for vi in graph.output:
        if vi.name in ctx.sequences or vi.type.HasField("sequence_type"):
            raise UnsupportedOpError(f"{label}: output {vi.name!r} is a sequence; woodpecker's outputs are tensors")
        value = ctx.value(vi.name)
        if builder.is_constant(value) or value in builder.inputs or value in outputs:
            # The runtime writes each graph output into its own buffer; give a constant or aliased output one.
            value = _materialize(builder, value)
        narrow = NARROW_ONNX.get(vi.type.tensor_type.elem_type)
        if narrow is not None:
            if builder.type_of(value).dtype != formats.carrier(narrow) or ctx.narrow.get(vi.name, narrow) != narrow:
                raise UnsupportedOpError(f"{label}: output {vi.name!r} is declared {narrow} but computed as "
                                         f"{ctx.narrow.get(vi.name) or builder.type_of(value).dtype}")
            narrow_io[vi.name] = narrow
        outputs.append(value)
        output_names.append(vi.name)
    builder.narrow_io = narrow_io
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
