"""Narrow element types in the ONNX frontend: which ONNX values have one, and keeping them exact.

float16, bfloat16, the float8 types, float4e2m1 and the 4-/2-bit integers are held in a carrier type (float32, or
int8/uint8; see woodpecker.ir.formats). The importer records the narrow type of each such ONNX value
(`ctx.narrow`), and `after_node` keeps the values exact:
  * a float16/bfloat16 result of an operator that computes (Add, Conv, Softmax...) is computed in float32 and
    rounded to its type right there (a `to_format` node, fused into the kernel), so that the next operator reads
    what onnxruntime's would;
  * an operator that only moves or selects values (Reshape, Gather, Max, Relu...) needs no rounding;
  * the float8/float4/int4/int2 types flow only through those: an operator computing in them is refused;
  * a constant folded in a narrow numpy type becomes its carrier.
Cast and CastLike into a narrow type are in onnx_ops_narrow. (This module imports neither the importer nor the
handlers: both use it.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import onnx

from woodpecker.ir import formats

if TYPE_CHECKING:
    from woodpecker.frontend.context import ImportContext

# ONNX element type -> woodpecker's name of the narrow type (the numpy / ml_dtypes dtype name)
NARROW_ONNX: dict[int, str] = {
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.FLOAT8E4M3FN: "float8_e4m3fn",
    onnx.TensorProto.FLOAT8E4M3FNUZ: "float8_e4m3fnuz",
    onnx.TensorProto.FLOAT8E5M2: "float8_e5m2",
    onnx.TensorProto.FLOAT8E5M2FNUZ: "float8_e5m2fnuz",
    onnx.TensorProto.FLOAT8E8M0: formats.E8M0,
    onnx.TensorProto.FLOAT4E2M1: "float4_e2m1fn",
    onnx.TensorProto.INT4: "int4",
    onnx.TensorProto.UINT4: "uint4",
    onnx.TensorProto.INT2: "int2",
    onnx.TensorProto.UINT2: "uint2",
}
# Narrow types that operators may compute in (in float32, rounded after each operator).
COMPUTABLE = ("float16", "bfloat16")
# Operators whose every output element is one of the input elements (or a constant of the same type): a result of a
# narrow type needs no rounding.
EXACT_OPS = frozenset({
    "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice",
    "Gather", "GatherElements", "GatherND", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth", "Where", "Max",
    "Min", "Relu", "Neg", "Abs", "Sign", "Floor", "Ceil", "Round", "Clip", "MaxPool", "GlobalMaxPool", "ReduceMax",
    "ReduceMin", "Constant", "ConstantOfShape", "Trilu", "EyeLike", "Cast", "CastLike",
})


def element_types(proto: onnx.ModelProto) -> dict[str, int]:
    """ONNX element type of every value ONNX's type inference knows (graph inputs, initializers, node outputs)."""
    graph = proto.graph
    if not any(_mentions_narrow(vi) for vi in (*graph.input, *graph.output, *graph.value_info)) and not any(
            init.data_type in NARROW_ONNX for init in graph.initializer) and not any(
            n.op_type in ("Cast", "CastLike", "Constant", "ConstantOfShape") for n in graph.node):
        return {}  # no narrow type anywhere: skip the inference
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False).graph
    except Exception:  # ONNX inference gives up on some valid models; `after_node` falls back to the inputs' types
        inferred = graph
    out = {init.name: init.data_type for init in graph.initializer}
    for vi in (*inferred.input, *inferred.value_info, *inferred.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            out[vi.name] = vi.type.tensor_type.elem_type
    return out


def _mentions_narrow(vi: onnx.ValueInfoProto) -> bool:
    return vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type in NARROW_ONNX


def after_node(ctx: ImportContext, node: onnx.NodeProto, results: list[str | None]) -> list[str | None]:
    """The node's results with narrow-type outputs made exact (see the module docstring); records their types."""
    out = list(results)
    for k, (onnx_name, value) in enumerate(zip(node.output, results)):
        if not onnx_name or value is None:
            continue
        value = _carrier_constant(ctx, value)
        narrow = _output_narrow_type(ctx, node, onnx_name, value)
        if narrow is not None:
            dtype = ctx.b.type_of(value).dtype
            if dtype != formats.carrier(narrow):
                raise ctx.fail(node, f"output {k} of type {narrow} is computed as {dtype}, not its carrier "
                                     f"{formats.carrier(narrow)}")
            if node.op_type not in EXACT_OPS:
                if narrow not in COMPUTABLE:
                    raise ctx.fail(node, f"computing in {narrow} is not supported (only Cast and data movement)")
                value = ctx.b.emit1("to_format", [value], _format_attrs(narrow), name=(node.name or node.op_type))
            ctx.narrow[onnx_name] = narrow
        out[k] = value
    return out


def _carrier_constant(ctx: ImportContext, value: str) -> str:
    """A constant folded in a narrow numpy type (a float16 Constant, a bfloat16 ConstantOfShape) as its carrier."""
    dtype = ctx.b.type_of(value).dtype
    if dtype in formats.NARROW_TYPES and ctx.b.is_constant(value):
        return ctx.b.constant(ctx.b.constants[value].astype(formats.carrier(dtype)), value)
    return value


def _output_narrow_type(ctx: ImportContext, node: onnx.NodeProto, onnx_name: str, value: str) -> str | None:
    if node.op_type in ("Cast", "CastLike") or onnx_name in ctx.narrow:
        return ctx.narrow.get(onnx_name)
    elem = ctx.elem_types.get(onnx_name)
    if elem is not None:
        return NARROW_ONNX.get(elem)
    # no inferred type: the narrow type of the inputs, if they share one and the result is held in its carrier
    kinds = {ctx.narrow[i] for i in node.input if i in ctx.narrow}
    if len(kinds) == 1:
        (narrow,) = kinds
        if ctx.b.type_of(value).dtype == formats.carrier(narrow):
            return narrow
    return None


def logical_type(ctx: ImportContext, onnx_name: str) -> str:
    """A value's element type as the model declares it: its narrow type, or the type it is held in."""
    return ctx.narrow.get(onnx_name) or ctx.b.type_of(ctx.value(onnx_name)).dtype


def _format_attrs(narrow: str, saturate: bool = True, round_mode: str = "up") -> dict:
    """to_format's attributes, normalized (saturate only for the float8 types, round_mode only for e8m0) so that
    equal conversions make equal kernels."""
    fmt = formats.FLOAT_FORMATS.get(narrow)
    sat = bool(saturate) if narrow == formats.E8M0 or (fmt is not None and fmt.saturable) else True
    return {"type": narrow, "saturate": sat, "round_mode": round_mode if narrow == formats.E8M0 else "up"}
