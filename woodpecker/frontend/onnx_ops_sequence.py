"""The ONNX sequence operators, as lists fixed at compile time.

woodpecker compiles ahead of time for fixed shapes, so a sequence is held by the importer as a tuple of tensor values
(ImportContext.sequences), never as a run-time object: SequenceConstruct/Empty/Insert/Erase edit the tuple,
SplitToSequence slices a tensor into it, ConcatFromSequence and SequenceAt read it back into tensors. Its length is
therefore known at compile time (SequenceLength folds to a constant). Positions must be constants, except
SequenceAt's over elements of one shape: that one is a gather over the stacked elements, so the position may be a
run-time input. A run-time position out of range is not an error there: like any gather index, it is clamped to
the first or last element (a compile-time one is checked and refused). A sequence may not be a graph input or
output (the runtime passes tensors only).
"""

from __future__ import annotations

import numpy as np

from woodpecker.frontend.context import ONNX_DTYPES, ImportContext
from woodpecker.frontend.op_base import _axis, _emit, _reshape, handles


def _sequence(ctx: ImportContext, node, i: int) -> tuple[str, ...]:
    name = node.input[i]
    if name not in ctx.sequences:
        raise ctx.fail(node, f"input {i} ({name!r}) is not a sequence")
    return ctx.sequences[name]


def _set(ctx: ImportContext, node, items: tuple[str, ...], dtype: str | None = None) -> list[str | None]:
    """Record the node's sequence output; the importer's value table holds only tensors."""
    types = {ctx.b.type_of(v).dtype for v in items}
    if len(types) > 1:
        raise ctx.fail(node, f"sequence elements of different element types {sorted(types)}")
    ctx.sequences[node.output[0]] = items
    ctx.sequence_dtypes[node.output[0]] = dtype or (types.pop() if types else "float32")
    return [None]


def _position(ctx: ImportContext, node, i: int, length: int, default: int, allow_end: bool) -> int:
    """A constant position, normalized: in [-length, length] for an insertion, else [-length, length - 1]."""
    value = ctx.const(node, i, "position")
    if value is None:
        return default
    pos = int(np.asarray(value).reshape(-1)[0])
    top = length if allow_end else length - 1
    if not -length <= pos <= top:
        raise ctx.fail(node, f"position {pos} is out of range for a sequence of length {length}")
    return pos + length if pos < 0 else pos


@handles("SequenceEmpty")
def _sequence_empty(ctx, node, attrs):
    dtype = ONNX_DTYPES.get(int(attrs.get("dtype", 1)))
    if dtype is None:
        raise ctx.fail(node, f"element type {attrs['dtype']} is not supported")
    return _set(ctx, node, (), dtype)


@handles("SequenceConstruct")
def _sequence_construct(ctx, node, attrs):
    return _set(ctx, node, tuple(ctx.input(node, i) for i in range(len(node.input))))


@handles("SequenceInsert")
def _sequence_insert(ctx, node, attrs):
    items = _sequence(ctx, node, 0)
    tensor = ctx.input(node, 1)
    if not items and ctx.b.type_of(tensor).dtype != ctx.sequence_dtypes[node.input[0]]:
        raise ctx.fail(node, f"inserting {ctx.b.type_of(tensor).dtype} into a sequence of "
                             f"{ctx.sequence_dtypes[node.input[0]]}")
    pos = _position(ctx, node, 2, len(items), len(items), allow_end=True)
    return _set(ctx, node, items[:pos] + (tensor,) + items[pos:])


@handles("SequenceErase")
def _sequence_erase(ctx, node, attrs):
    items = _sequence(ctx, node, 0)
    if not items:
        raise ctx.fail(node, "erasing from an empty sequence")
    pos = _position(ctx, node, 1, len(items), len(items) - 1, allow_end=False)
    return _set(ctx, node, items[:pos] + items[pos + 1:], ctx.sequence_dtypes[node.input[0]])


@handles("SequenceLength")
def _sequence_length(ctx, node, attrs):
    return [ctx.b.constant(np.array(len(_sequence(ctx, node, 0)), dtype=np.int64), node.output[0])]


@handles("SequenceAt")
def _sequence_at(ctx, node, attrs):
    items = _sequence(ctx, node, 0)
    if not items:
        raise ctx.fail(node, "reading from an empty sequence")
    if ctx.b.is_constant(ctx.input(node, 1)):
        return [items[_position(ctx, node, 1, len(items), 0, allow_end=False)]]
    shapes = {ctx.b.type_of(v).shape for v in items}
    if len(shapes) > 1:
        raise ctx.fail(node, "a run-time position into a sequence of differently shaped tensors is not supported "
                             "(make the position a constant)")
    # Elements of one shape: stack them and gather; Gather takes negative positions as ONNX's SequenceAt does.
    shape = ctx.b.type_of(items[0]).shape
    stacked = _stack(ctx, node, items, 0)
    index = _reshape(ctx, ctx.input(node, 1), ())
    return [_reshape(ctx, _emit(ctx, node, "gather", [stacked, index], {"axis": 0}), shape)]


def _stack(ctx, node, items, axis: int) -> str:
    """The elements stacked along a new axis: they must all have one shape (ONNX leaves other cases undefined)."""
    if len({ctx.b.type_of(v).shape for v in items}) > 1:
        raise ctx.fail(node, "new_axis=1 needs sequence elements of one shape")
    shape = list(ctx.b.type_of(items[0]).shape)
    shape.insert(axis, 1)
    parts = [_reshape(ctx, v, shape) for v in items]
    return parts[0] if len(parts) == 1 else _emit(ctx, node, "concat", parts, {"axis": axis})


@handles("ConcatFromSequence")
def _concat_from_sequence(ctx, node, attrs):
    items = _sequence(ctx, node, 0)
    if not items:
        raise ctx.fail(node, "concatenating an empty sequence")
    rank = ctx.b.type_of(items[0]).rank
    if int(attrs.get("new_axis", 0)):
        return [_stack(ctx, node, items, _axis(int(attrs["axis"]), rank + 1))]
    axis = _axis(int(attrs["axis"]), rank)
    if len(items) == 1:
        return [items[0]]
    return [_emit(ctx, node, "concat", list(items), {"axis": axis})]


@handles("SplitToSequence")
def _split_to_sequence(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    axis = _axis(int(attrs.get("axis", 0)), t.rank)
    dim = t.shape[axis]
    split = ctx.const(node, 1, "split")
    if split is None:  # pieces of one, the axis dropped unless keepdims
        sizes, keep = [1] * dim, bool(attrs.get("keepdims", 1))
    elif np.ndim(split) == 0:  # pieces of this size, the last one smaller
        step = int(split)
        if step <= 0:
            raise ctx.fail(node, f"split size {step} must be positive")
        sizes, keep = [min(step, dim - k) for k in range(0, dim, step)], True
    else:
        sizes, keep = [int(v) for v in split.reshape(-1)], True
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ctx.fail(node, f"split sizes {sizes} do not add up to {dim}")
    items, offset = [], 0
    for size in sizes:
        starts, ends = [0] * t.rank, list(t.shape)
        starts[axis], ends[axis] = offset, offset + size
        piece = x if size == dim else ctx.b.emit1(
            "slice", [x], {"starts": tuple(starts), "ends": tuple(ends), "steps": (1,) * t.rank},
            name=node.name or "split_to_sequence")
        if not keep:
            piece = _reshape(ctx, piece, [d for k, d in enumerate(t.shape) if k != axis])
        items.append(piece)
        offset += size
    return _set(ctx, node, tuple(items), t.dtype)
