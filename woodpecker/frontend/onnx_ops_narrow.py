"""Cast and CastLike (into any type, the narrow ones included), and the float16/bfloat16 Softmax.

A Cast into a narrow type (woodpecker.frontend.narrow_types, woodpecker.ir.formats) is a `to_format` node: rounding
(ties to even), overflow, `saturate` and `round_mode` as in ONNX's reference implementation.
"""

from __future__ import annotations

import onnx

from woodpecker.frontend.narrow_types import COMPUTABLE, NARROW_ONNX, _format_attrs, logical_type
from woodpecker.frontend.context import ONNX_DTYPES, ImportContext
from woodpecker.frontend.onnx_ops import HANDLERS, _axis, _emit, _reduce_value, handles
from woodpecker.ir import formats


def _convert(ctx: ImportContext, node: onnx.NodeProto, attrs: dict, target: str) -> list[str]:
    x = ctx.input(node, 0)
    source = logical_type(ctx, node.input[0])
    round_mode = attrs.get("round_mode", "up")
    if target == formats.E8M0 and round_mode not in formats.E8M0_ROUND_MODES:
        raise ctx.fail(node, f"round_mode {round_mode!r} is not one of {list(formats.E8M0_ROUND_MODES)}")
    if target in formats.NARROW_TYPES:
        ctx.narrow[node.output[0]] = target
        if source == target:
            return [x]
        saturate = bool(attrs.get("saturate", 1))
        return [_emit(ctx, node, "to_format", [x], _format_attrs(target, saturate, round_mode))]
    if ctx.b.type_of(x).dtype == target:
        return [x]  # the same type, or a narrow type whose carrier is the target (float16 -> float32: exact)
    return [_emit(ctx, node, "cast", [x], {"to": target})]


def _target_type(ctx: ImportContext, node: onnx.NodeProto, to: int) -> str:
    target = ONNX_DTYPES.get(to) or NARROW_ONNX.get(to)
    if target is None:
        raise ctx.fail(node, f"cast to {onnx.TensorProto.DataType.Name(to)} is not supported")
    return target


@handles("Cast")
def _cast(ctx, node, attrs):
    return _convert(ctx, node, attrs, _target_type(ctx, node, attrs["to"]))


@handles("CastLike")
def _cast_like(ctx, node, attrs):
    return _convert(ctx, node, attrs, logical_type(ctx, node.input[1]))


_PLAIN_SOFTMAX = HANDLERS["Softmax"]


@handles("Softmax")
def _softmax(ctx, node, attrs):
    """A float16/bfloat16 Softmax rounds each step to its type, as the operator's definition evaluated in that type
    does (ONNX's reference: x - max, exp, sum, divide): computed in float32 and rounded once, a probability can end
    two float16 ulps away. Other types: the fused softmax kernel."""
    narrow = ctx.narrow.get(node.input[0])
    if narrow not in COMPUTABLE:
        return _PLAIN_SOFTMAX(ctx, node, attrs)
    x = ctx.input(node, 0)
    rank = ctx.b.type_of(x).rank
    # opset 13 normalizes over `axis`; before, over every axis from `axis` on (the input flattened to 2-D there)
    axis = _axis(int(attrs.get("axis", -1 if ctx.opset >= 13 else 1)), rank)
    axes = [axis] if ctx.opset >= 13 else list(range(axis, rank))

    def rounded(value: str) -> str:
        return ctx.b.emit1("to_format", [value], _format_attrs(narrow))

    shifted = rounded(ctx.b.emit1("sub", [x, _reduce_value(ctx, node, x, "max", axes, 1)]))
    e = rounded(ctx.b.emit1("exp", [shifted]))
    total = rounded(_reduce_value(ctx, node, e, "sum", axes, 1))
    return [_emit(ctx, node, "div", [e, total])]  # rounded by after_node
