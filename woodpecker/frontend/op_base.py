"""What every ONNX operator handler module builds on: the handler table (HANDLERS, filled by @handles when a handler
module is imported; woodpecker.frontend.handlers imports them all) and the helpers several modules share."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import onnx

from woodpecker.frontend.context import ImportContext

Handler = Callable[[ImportContext, onnx.NodeProto, dict[str, Any]], list[str | None]]
HANDLERS: dict[str, Handler] = {}


def handles(*op_types: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for op in op_types:
            HANDLERS[op] = fn
        return fn

    return wrap


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _reshape(ctx: ImportContext, value: str, shape: Sequence[int]) -> str:
    if tuple(ctx.b.type_of(value).shape) == tuple(shape):
        return value
    return ctx.b.emit1("reshape", [value], {"shape": tuple(int(d) for d in shape)})


def _emit(ctx: ImportContext, node: onnx.NodeProto, op: str, inputs: Sequence[str], attrs: dict | None = None) -> str:
    return ctx.b.emit1(op, inputs, attrs or {}, name=node.name or op)


def _spatial_pads(ctx, node, attrs, in_hw, kernel, strides, dilations) -> tuple[int, int, int, int]:
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = attrs.get("pads", [0, 0, 0, 0])
        if len(pads) != 4:
            raise ctx.fail(node, f"pads {pads} do not describe 2-D padding")
        return (pads[0], pads[1], pads[2], pads[3])  # ONNX order: h_begin, w_begin, h_end, w_end
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.fail(node, f"auto_pad={auto_pad!r} is not supported")
    begins, ends = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else total - small)
        ends.append(total - begins[-1])
    return (begins[0], begins[1], ends[0], ends[1])


def _pool_common(ctx, node, attrs, x):
    kernel = tuple(attrs["kernel_shape"])
    strides = tuple(attrs.get("strides", (1,) * len(kernel)))
    dilations = tuple(attrs.get("dilations", (1,) * len(kernel)))
    h, w = ctx.b.type_of(x).shape[2:]
    pads = _spatial_pads(ctx, node, attrs, (h, w), kernel, strides, dilations)
    extra = [0, 0]
    if attrs.get("ceil_mode", 0):
        for i, size in enumerate((h, w)):
            span = size + pads[i] + pads[i + 2] - dilations[i] * (kernel[i] - 1) - 1
            out_ceil = -(-span // strides[i]) + 1
            # ONNX/PyTorch: the last window must start inside the input or the left padding
            if (out_ceil - 1) * strides[i] >= size + pads[i]:
                out_ceil -= 1
            extra[i] = max(0, (out_ceil - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - (size + pads[i] + pads[i + 2]))
    walk = (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])
    return {"kernel": kernel, "strides": strides, "dilations": dilations, "pads": walk}, pads
