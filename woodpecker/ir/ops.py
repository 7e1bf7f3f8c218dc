"""Canonical operator set of the graph IR: for each op, its fusion kind, type inference and a numpy reference.

The ONNX frontend maps every supported ONNX operator onto these ops. The numpy references serve two purposes:
constant folding (a node whose inputs are all constants is evaluated at compile time) and checking generated
kernels against an independent implementation.

Kinds (they drive fusion and lowering):
  elementwise  one output element from the same-index elements of broadcast inputs; fuses anywhere
  injective    each output element reads one input element at a remapped index (transpose, slice, concat...)
  anchor       has a reduction and its own kernel template (conv, dense, pooling, softmax...); takes an epilogue
  view         no data movement (reshape): the runtime aliases the buffer
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from woodpecker.errors import ShapeError
from woodpecker.ir import formats, winograd
from woodpecker.ir.graph import TensorType

Attrs = Mapping[str, Any]
InferFn = Callable[[Sequence[TensorType], Attrs], list[TensorType]]
EvalFn = Callable[[Sequence[np.ndarray], Attrs], list[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class OpDef:
    name: str
    kind: str  # "elementwise" | "injective" | "anchor" | "view"
    infer: InferFn
    evaluate: EvalFn


REGISTRY: dict[str, OpDef] = {}


def register(name: str, kind: str, infer: InferFn, evaluate: EvalFn) -> None:
    REGISTRY[name] = OpDef(name, kind, infer, evaluate)


def get(name: str) -> OpDef:
    return REGISTRY[name]


def kind_of(node) -> str:
    """A graph node's kind: its op's, or "fused" for a fused node (whose body holds the ops)."""
    return "fused" if node.op == "fused" else REGISTRY[node.op].kind


def is_view(node) -> bool:
    """Whether a node is a reshape view: no kernel, its output shares its input's storage."""
    return kind_of(node) == "view"


def infer_types(op: str, inputs: Sequence[TensorType], attrs: Attrs) -> list[TensorType]:
    return REGISTRY[op].infer(inputs, attrs)


def evaluate(op: str, inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
    return REGISTRY[op].evaluate(inputs, attrs)


# ----------------------------------------------------------------------------------------------------------------
# helpers


def broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise ShapeError(f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast") from None


def _same(inputs: Sequence[TensorType], attrs: Attrs) -> list[TensorType]:
    return [TensorType(inputs[0].shape, inputs[0].dtype, inputs[0].layout)]


def _layout_of(inputs: Sequence[TensorType], shape: tuple[int, ...]) -> str:
    # A broadcast result keeps the blocked layout of the full-rank operand that has it.
    for t in inputs:
        if t.layout and t.shape == shape:
            return t.layout
    return ""


def _unary(fn: Callable[[np.ndarray, Attrs], np.ndarray]) -> EvalFn:
    def run(inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
        x = inputs[0]
        return [np.asarray(fn(x, attrs)).astype(x.dtype, copy=False)]

    return run


def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(x)


def _gelu(x: np.ndarray, a: Attrs) -> np.ndarray:
    if a.get("approximate", "none") == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _clip(x: np.ndarray, a: Attrs) -> np.ndarray:
    lo, hi = a.get("min"), a.get("max")
    out = x
    if lo is not None:
        out = np.maximum(out, lo)
    if hi is not None:
        out = np.minimum(out, hi)
    return out


UNARY: dict[str, Callable[[np.ndarray, Attrs], np.ndarray]] = {
    "identity": lambda x, a: x.copy(),
    "relu": lambda x, a: np.maximum(x, 0),
    "sigmoid": lambda x, a: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda x, a: np.tanh(x),
    "exp": lambda x, a: np.exp(x),
    "log": lambda x, a: np.log(x),
    "sqrt": lambda x, a: np.sqrt(x),
    "reciprocal": lambda x, a: 1.0 / x,
    "neg": lambda x, a: -x,
    "abs": lambda x, a: np.abs(x),
    "floor": lambda x, a: np.floor(x),
    "ceil": lambda x, a: np.ceil(x),
    "erf": lambda x, a: _erf(x),
    "softplus": lambda x, a: np.logaddexp(0, x),  # log(1 + exp(x)) without overflow for large x
    "clip": _clip,
    "leaky_relu": lambda x, a: np.where(x >= 0, x, x * a.get("alpha", 0.01)),
    "elu": lambda x, a: np.where(x > 0, x, a.get("alpha", 1.0) * (np.exp(x) - 1.0)),
    "hard_sigmoid": lambda x, a: np.clip(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0, 1),
    "hard_swish": lambda x, a: x * np.clip(x / 6.0 + 0.5, 0, 1),
    "gelu": _gelu,
    "sin": lambda x, a: np.sin(x),
    "cos": lambda x, a: np.cos(x),
    "tan": lambda x, a: np.tan(x),
    "asin": lambda x, a: np.arcsin(x),
    "acos": lambda x, a: np.arccos(x),
    "atan": lambda x, a: np.arctan(x),
    "sinh": lambda x, a: np.sinh(x),
    "cosh": lambda x, a: np.cosh(x),
    "asinh": lambda x, a: np.arcsinh(x),
    "acosh": lambda x, a: np.arccosh(x),
    "atanh": lambda x, a: np.arctanh(x),
    "round": lambda x, a: np.round(x),  # ties to even, as ONNX Round
}

for _name, _fn in UNARY.items():
    register(_name, "elementwise", _same, _unary(_fn))


def _cast_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    return [TensorType(inputs[0].shape, a["to"], inputs[0].layout)]


register("cast", "elementwise", _cast_infer, lambda xs, a: [xs[0].astype(a["to"])])


def _to_format_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    return [TensorType(inputs[0].shape, formats.carrier(a["type"]), inputs[0].layout)]


# x rounded into a narrow type (float16, float8..., int4: woodpecker.ir.formats), held in that type's carrier
register("to_format", "elementwise", _to_format_infer,
         lambda xs, a: [formats.to_format(xs[0], a["type"], a.get("saturate", True), a.get("round_mode", "up"))])

BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
}
COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "equal": np.equal,
    "less": np.less,
    "greater": np.greater,
}


def _binary_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    shape = broadcast_shape(*(t.shape for t in inputs))
    return [TensorType(shape, inputs[0].dtype, _layout_of(inputs, shape))]


def _compare_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    shape = broadcast_shape(*(t.shape for t in inputs))
    return [TensorType(shape, "bool", _layout_of(inputs, shape))]


def trunc_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX integer Div: the quotient truncated towards zero, exact for all int64 (no detour through float64);
    0 where the divisor is 0 (undefined in ONNX; the generated kernels give 0 rather than trap)."""
    safe = np.where(b == 0, 1, b).astype(b.dtype)
    q = np.floor_divide(a, safe)
    q = np.where((np.remainder(a, safe) != 0) & (q < 0), q + 1, q)
    return np.where(b == 0, 0, q)


def _binary_eval(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> EvalFn:
    def run(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
        if xs[0].dtype.kind in "iu" and fn is np.divide:
            out = trunc_divide(xs[0], xs[1].astype(xs[0].dtype))
        else:
            out = fn(xs[0], xs[1])
        return [np.asarray(out).astype(xs[0].dtype, copy=False)]

    return run


for _name, _fn in BINARY.items():
    register(_name, "elementwise", _binary_infer, _binary_eval(_fn))


def _mod_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    """ONNX Mod: fmod=0 takes the divisor's sign (Python's %), fmod=1 the dividend's (C fmod). An integer
    remainder by 0 is 0 here and in the generated kernels (undefined in ONNX; natively it traps)."""
    x, y = xs[0], xs[1].astype(xs[0].dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        if x.dtype.kind in "iu":
            safe = np.where(y == 0, 1, y).astype(y.dtype)
            out = np.where(y == 0, 0, np.fmod(x, safe) if a.get("fmod", 0) else np.mod(x, safe))
        else:
            out = np.fmod(x, y) if a.get("fmod", 0) else np.mod(x, y)
    return [np.asarray(out).astype(x.dtype, copy=False)]


register("mod", "elementwise", _binary_infer, _mod_eval)


def _class_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    return [TensorType(inputs[0].shape, "bool", inputs[0].layout)]


register("isnan", "elementwise", _class_infer, lambda xs, a: [np.isnan(xs[0])])
register("isinf", "elementwise", _class_infer, lambda xs, a: [np.isinf(xs[0])])
for _name, _fn in COMPARE.items():
    register(_name, "elementwise", _compare_infer, lambda xs, a, f=_fn: [np.asarray(f(xs[0], xs[1]))])


def _where_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    shape = broadcast_shape(*(t.shape for t in inputs))
    return [TensorType(shape, inputs[1].dtype, _layout_of(inputs, shape))]


register("where", "elementwise", _where_infer, lambda xs, a: [np.where(xs[0], xs[1], xs[2]).astype(xs[1].dtype)])

ELEMENTWISE_OPS = frozenset(list(UNARY) + list(BINARY) + list(COMPARE)
                            + ["cast", "to_format", "where", "mod", "isnan", "isinf"])

# ----------------------------------------------------------------------------------------------------------------
# views and injective ops


def _reshape_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    shape = tuple(int(d) for d in a["shape"])
    if int(np.prod(shape, dtype=np.int64)) != inputs[0].size:
        raise ShapeError(f"cannot reshape {list(inputs[0].shape)} to {list(shape)}")
    return [TensorType(shape, inputs[0].dtype)]


register("reshape", "view", _reshape_infer, lambda xs, a: [xs[0].reshape(tuple(a["shape"]))])


def _transpose_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    perm = a["perm"]
    return [TensorType(tuple(inputs[0].shape[p] for p in perm), inputs[0].dtype)]


register("transpose", "injective", _transpose_infer, lambda xs, a: [np.ascontiguousarray(xs[0].transpose(a["perm"]))])


def slice_extent(start: int, end: int, step: int) -> int:
    if step > 0:
        return max(0, (end - start + step - 1) // step)
    return max(0, (start - end + (-step) - 1) // (-step))


def _slice_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    shape = tuple(slice_extent(b, e, s) for b, e, s in zip(a["starts"], a["ends"], a["steps"]))
    return [TensorType(shape, inputs[0].dtype)]


def _slice_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    index = []
    for b, e, s in zip(a["starts"], a["ends"], a["steps"]):
        # normalized starts/ends are concrete: a negative end only happens with a negative step (meaning "before 0")
        index.append(slice(b, e if e >= 0 else None, s))
    return [np.ascontiguousarray(xs[0][tuple(index)])]


register("slice", "injective", _slice_infer, _slice_eval)


def _concat_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    axis = a["axis"]
    base = list(inputs[0].shape)
    for t in inputs[1:]:
        if t.rank != len(base) or any(d != e for i, (d, e) in enumerate(zip(t.shape, base)) if i != axis):
            raise ShapeError(f"concat inputs {[list(t.shape) for t in inputs]} differ outside axis {axis}")
    base[axis] = sum(t.shape[axis] for t in inputs)
    layouts = {t.layout for t in inputs}
    return [TensorType(tuple(base), inputs[0].dtype, layouts.pop() if len(layouts) == 1 else "")]


register("concat", "injective", _concat_infer, lambda xs, a: [np.concatenate(list(xs), axis=a["axis"])])


def _pad_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    pads = a["pads"]  # (begin_0, ..., begin_n-1, end_0, ..., end_n-1), as in ONNX
    r = inputs[0].rank
    return [TensorType(tuple(d + pads[i] + pads[i + r] for i, d in enumerate(inputs[0].shape)), inputs[0].dtype)]


def _pad_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    r = xs[0].ndim
    pads = a["pads"]
    width = [(pads[i], pads[i + r]) for i in range(r)]
    mode = a.get("mode", "constant")
    if mode == "constant":
        return [np.pad(xs[0], width, mode="constant", constant_values=a.get("value", 0.0))]
    return [np.pad(xs[0], width, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])]


register("pad", "injective", _pad_infer, _pad_eval)


def _gather_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    axis = a["axis"]
    data, idx = inputs
    shape = data.shape[:axis] + idx.shape + data.shape[axis + 1 :]
    return [TensorType(tuple(shape), data.dtype)]


def _gather_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    data, idx = xs
    idx = np.where(idx < 0, idx + data.shape[a["axis"]], idx)
    return [np.take(data, idx.astype(np.int64), axis=a["axis"])]


register("gather", "injective", _gather_infer, _gather_eval)


def _expand_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    return [TensorType(tuple(a["shape"]), inputs[0].dtype)]


register("expand", "injective", _expand_infer, lambda xs, a: [np.broadcast_to(xs[0], tuple(a["shape"])).copy()])


def padded_channels(channels: int, block: int) -> int:
    """Channels of the blocked form: rounded up to whole blocks (the padding lanes hold zeros)."""
    return -(-channels // block) * block


def block_channels(x: np.ndarray, block: int) -> np.ndarray:
    """NCHW -> NCHW[block]c: [N, C, H, W] -> [N, ceil(C/block), H, W, block], zero channels appended to fill the
    last block."""
    n, c, h, w = x.shape
    cp = padded_channels(c, block)
    if cp != c:
        x = np.concatenate([x, np.zeros((n, cp - c, h, w), x.dtype)], axis=1)
    return np.ascontiguousarray(x.reshape(n, cp // block, block, h, w).transpose(0, 1, 3, 4, 2))


def unblock_channels(x: np.ndarray, channels: int | None = None) -> np.ndarray:
    """NCHW[b]c -> NCHW, keeping the first `channels` (default: all, padding included)."""
    n, cb, h, w, b = x.shape
    plain = x.transpose(0, 1, 4, 2, 3).reshape(n, cb * b, h, w)
    return np.ascontiguousarray(plain if channels is None else plain[:, :channels])


def _layout_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    """attrs: block, to_blocked, and `channels` where the blocks are padded: the NCHW side's channel count."""
    t = inputs[0]
    block = a["block"]
    if a["to_blocked"]:
        n, c, h, w = t.shape
        if c % block and a.get("channels") != c:
            raise ShapeError(f"{c} channels are not a multiple of the layout block {block} (and not marked padded)")
        return [TensorType((n, padded_channels(c, block) // block, h, w, block), t.dtype, f"NCHW{block}c")]
    n, cb, h, w, b = t.shape
    channels = int(a.get("channels", cb * b))
    if not cb * b - b < channels <= cb * b:
        raise ShapeError(f"{channels} channels do not fill the last of {cb} blocks of {b}")
    return [TensorType((n, channels, h, w), t.dtype)]


register(
    "layout_transform",
    "injective",
    _layout_infer,
    lambda xs, a: [block_channels(xs[0], a["block"]) if a["to_blocked"] else unblock_channels(xs[0], a.get("channels"))],
)

def shuffle_source(j: np.ndarray | int, channels: Sequence[int], groups: int):
    """For channel j of a channel shuffle of the concatenation of sources with `channels` channels each: (the
    source, its channel). The shuffle reads the concatenation (C channels) as [groups, C/groups] and transposes
    it: j = i * groups + k takes concatenated channel k * C/groups + i."""
    total = int(sum(channels))
    q = (np.asarray(j) % groups) * (total // groups) + np.asarray(j) // groups
    offsets = np.cumsum([0, *channels])
    source = np.searchsorted(offsets, q, side="right") - 1
    return source, q - offsets[source]


def _channel_shuffle_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    """attrs: channels (each source's real channel count), groups, start and stop (the channels of the shuffled
    concatenation kept), block (the output's channel block; the last block padded with zeros)."""
    channels, groups, start, stop, block = a["channels"], a["groups"], a["start"], a["stop"], a["block"]
    total = sum(channels)
    if len(channels) != len(inputs) or any(t.rank != 5 for t in inputs):
        raise ShapeError(f"channel shuffle of {len(inputs)} blocked sources needs 5-D inputs and as many channel counts")
    if any(c > t.shape[1] * t.shape[4] for c, t in zip(channels, inputs)) or total % groups:
        raise ShapeError(f"channel shuffle: channels {list(channels)} do not fit their sources or the {groups} groups")
    if not 0 <= start < stop <= total or len({t.shape[2:4] for t in inputs}) != 1:
        raise ShapeError(f"channel shuffle: channels {start}:{stop} of {total}, or sources of different sizes")
    n, _, h, w, _ = inputs[0].shape
    return [TensorType((n, padded_channels(stop - start, block) // block, h, w, block), inputs[0].dtype, f"NCHW{block}c")]


def _channel_shuffle_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    plains = [unblock_channels(x, c) for x, c in zip(xs, a["channels"])]
    source, channel = shuffle_source(np.arange(a["start"], a["stop"]), a["channels"], a["groups"])
    kept = np.stack([plains[s][:, c] for s, c in zip(source.tolist(), channel.tolist())], axis=1)
    return [block_channels(kept, a["block"])]


# A channel shuffle (ShuffleNet: concat -> reshape [N, g, C/g, H, W] -> transpose -> reshape -> split) kept in the
# blocked layout: the sources are read where they lie (blocked, padded) and the kept channels written in blocks.
register("channel_shuffle_nchwc", "injective", _channel_shuffle_infer, _channel_shuffle_eval)


# ----------------------------------------------------------------------------------------------------------------
# anchors: convolution


def conv_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int) -> int:
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def _conv_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x, w = inputs[0], inputs[1]
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    g = a.get("groups", 1)
    if c != cg * g or k % g:
        raise ShapeError(f"conv input has {c} channels but weight {list(w.shape)} with groups={g} expects {cg * g}")
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["strides"], a["dilations"], a["pads"]
    oh, ow = conv_out(h, r, sh, pt, pb, dh), conv_out(wd, s, sw, pl, pr, dw)
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"conv output would be empty ({oh}x{ow}) for input {list(x.shape)}")
    return [TensorType((n, k, oh, ow), x.dtype)]


def _windows(xp: np.ndarray, r: int, s: int, strides: Sequence[int], dilations: Sequence[int], oh: int, ow: int):
    """[N, C, Hp, Wp] -> [N, C, OH, OW, R, S] strided view of the receptive fields."""
    (sh, sw), (dh, dw) = strides, dilations
    win = sliding_window_view(xp, ((r - 1) * dh + 1, (s - 1) * dw + 1), axis=(2, 3))
    return win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]


def conv2d_reference(x: np.ndarray, w: np.ndarray, a: Attrs) -> np.ndarray:
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    g = a.get("groups", 1)
    pt, pl, pb, pr = a["pads"]
    (oh, ow) = _conv_infer([TensorType(x.shape, "float32"), TensorType(w.shape, "float32")], a)[0].shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = _windows(xp, r, s, a["strides"], a["dilations"], oh, ow)  # n c y x r s
    win = win.reshape(n, g, cg, oh, ow, r, s)
    wg = w.reshape(g, k // g, cg, r, s)
    out = np.einsum("ngcyxrs,gkcrs->ngkyx", win, wg, optimize=True)
    return np.ascontiguousarray(out.reshape(n, k, oh, ow)).astype(x.dtype)


register("conv2d", "anchor", _conv_infer, lambda xs, a: [conv2d_reference(xs[0], xs[1], a)])


def _conv_nchwc_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x, w = inputs
    n, cb, h, wd, ib = x.shape
    kb, wcb, r, s, wib, ob = w.shape
    g = a.get("groups", 1)  # groups of whole channel blocks: the weight holds each output block's group only
    if cb % g or kb % g or (wcb, wib) != (cb // g, ib):
        raise ShapeError(f"blocked conv weight {list(w.shape)} ({g} groups) does not match input {list(x.shape)}")
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["strides"], a["dilations"], a["pads"]
    oh, ow = conv_out(h, r, sh, pt, pb, dh), conv_out(wd, s, sw, pl, pr, dw)
    return [TensorType((n, kb, oh, ow, ob), x.dtype, f"NCHW{ob}c")]


def block_conv_weight(w: np.ndarray, ib: int, ob: int) -> np.ndarray:
    """A convolution weight [K, C, R, S] (C: input channels of one group) packed for conv2d_nchwc:
    [K/ob, C/ib, R, S, ib, ob]; plain_conv_weight undoes it."""
    k, c, r, s = w.shape
    return np.ascontiguousarray(w.reshape(k // ob, ob, c // ib, ib, r, s).transpose(0, 2, 4, 5, 3, 1))


def plain_conv_weight(op: str, w: np.ndarray, a: Attrs) -> tuple[np.ndarray, int, int]:
    """A blocked convolution's weight as a plain one: (OIHW weight, groups, output channel block), what the
    interpreter, the ONNX export and the PyTorch form of conv2d_nchwc, conv2d_winograd_nchwc and
    depthwise_conv2d_nchwc run."""
    if op == "conv2d_winograd_nchwc":
        op, w = "conv2d_nchwc", winograd.plain_weight(w)
    if op == "conv2d_nchwc":
        kb, cb, r, s, ib, ob = w.shape
        return w.transpose(0, 5, 1, 4, 2, 3).reshape(kb * ob, cb * ib, r, s), a.get("groups", 1), ob
    cb, r, s, b = w.shape
    return w.transpose(0, 3, 1, 2).reshape(cb * b, 1, r, s), cb * b, b


def _blocked_conv_eval(op: str):
    def evaluate(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
        x, w = xs
        plain, groups, ob = plain_conv_weight(op, w, a)
        return [block_channels(conv2d_reference(unblock_channels(x), plain, {**a, "groups": groups}), ob)]

    return evaluate


register("conv2d_nchwc", "anchor", _conv_nchwc_infer, _blocked_conv_eval("conv2d_nchwc"))


def _winograd_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x, u = inputs
    n, cb, h, wd, ib = x.shape
    positions, kb, ucb, uib, ob = u.shape
    if (positions, ucb, uib) != (winograd.POSITIONS, cb, ib):
        raise ShapeError(f"Winograd weight {list(u.shape)} does not match input {list(x.shape)}")
    pt, pl, pb, pr = a["pads"]
    return [TensorType((n, kb, h + pt + pb - 2, wd + pl + pr - 2, ob), x.dtype, f"NCHW{ob}c")]


# A 3x3 stride-1 convolution computed by Winograd F(4x4, 3x3) (woodpecker.ir.winograd, kernels/winograd.wpl); its
# weight is the transformed U, which the interpreter and the vendors turn back into the plain 3x3 weight.
register("conv2d_winograd_nchwc", "anchor", _winograd_infer, _blocked_conv_eval("conv2d_winograd_nchwc"))


def _dw_nchwc_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x, w = inputs
    n, cb, h, wd, b = x.shape
    wcb, r, s, wb = w.shape
    if (wcb, wb) != (cb, b):
        raise ShapeError(f"blocked depthwise weight {list(w.shape)} does not match input {list(x.shape)}")
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["strides"], a["dilations"], a["pads"]
    return [TensorType((n, cb, conv_out(h, r, sh, pt, pb, dh), conv_out(wd, s, sw, pl, pr, dw), b), x.dtype, f"NCHW{b}c")]


register("depthwise_conv2d_nchwc", "anchor", _dw_nchwc_infer, _blocked_conv_eval("depthwise_conv2d_nchwc"))

# ----------------------------------------------------------------------------------------------------------------
# anchors: matrix products


def _dense_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x, w = inputs
    if x.rank != 2 or w.rank != 2 or x.shape[1] != w.shape[1]:
        raise ShapeError(f"dense needs x[M, K] and w[N, K]; got {list(x.shape)} and {list(w.shape)}")
    return [TensorType((x.shape[0], w.shape[0]), x.dtype)]


register("dense", "anchor", _dense_infer, lambda xs, a: [(xs[0] @ xs[1].T).astype(xs[0].dtype)])


def _dense_packed_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x, w = inputs
    nb, k, b = w.shape
    if x.rank != 2 or x.shape[1] != k:
        raise ShapeError(f"packed dense needs x[M, {k}]; got {list(x.shape)}")
    return [TensorType((x.shape[0], nb * b), x.dtype)]


def pack_dense_weight(w: np.ndarray, block: int) -> np.ndarray:
    """[N, K] -> [N/block, K, block]: each block of output columns reads a contiguous panel."""
    n, k = w.shape
    return np.ascontiguousarray(w.reshape(n // block, block, k).transpose(0, 2, 1))


def _dense_packed_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    x, w = xs
    nb, k, b = w.shape
    return [(x @ w.transpose(1, 0, 2).reshape(k, nb * b)).astype(x.dtype)]


register("dense_packed", "anchor", _dense_packed_infer, _dense_packed_eval)


def _bmm_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x, y = inputs
    if x.rank != 3 or y.rank != 3:
        raise ShapeError(f"batch_matmul needs rank-3 operands; got {list(x.shape)} and {list(y.shape)}")
    bx, m, k = x.shape if not a.get("trans_a") else (x.shape[0], x.shape[2], x.shape[1])
    by, k2, n = y.shape if not a.get("trans_b") else (y.shape[0], y.shape[2], y.shape[1])
    if k != k2 or (bx != by and 1 not in (bx, by)):
        raise ShapeError(f"matmul operands {list(x.shape)} and {list(y.shape)} do not agree")
    return [TensorType((max(bx, by), m, n), x.dtype)]


def _bmm_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    x, y = xs
    if a.get("trans_a"):
        x = x.transpose(0, 2, 1)
    if a.get("trans_b"):
        y = y.transpose(0, 2, 1)
    return [np.matmul(x, y).astype(xs[0].dtype)]


register("batch_matmul", "anchor", _bmm_infer, _bmm_eval)

# ----------------------------------------------------------------------------------------------------------------
# anchors: pooling and normalization


def _pool_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x = inputs[0]
    (r, s), (sh, sw), (pt, pl, pb, pr) = a["kernel"], a["strides"], a["pads"]
    dh, dw = a.get("dilations", (1, 1))
    shape = list(x.shape)
    shape[2] = conv_out(shape[2], r, sh, pt, pb, dh)
    shape[3] = conv_out(shape[3], s, sw, pl, pr, dw)
    return [TensorType(tuple(shape), x.dtype, x.layout)]


def _pool_eval(kind: str) -> EvalFn:
    def run(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
        x = xs[0]
        blocked = x.ndim == 5
        if blocked:
            x = unblock_channels(x)
        (r, s), strides, (pt, pl, pb, pr) = a["kernel"], a["strides"], a["pads"]
        dil = a.get("dilations", (1, 1))
        oh, ow = _pool_infer([TensorType(x.shape, "float32")], a)[0].shape[2:]
        fill = -np.inf if kind == "max" else 0.0
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
        win = _windows(xp, r, s, strides, dil, oh, ow)
        if kind == "max":
            out = win.max(axis=(4, 5))
        else:
            # The divisor counts the window positions inside the region that `count_pads` says is counted:
            # the explicit pads when count_include_pad, never the extra end padding that ceil_mode adds.
            ct, cl, cb_, cr = a.get("count_pads", (0, 0, 0, 0))
            h, w = x.shape[2:]
            region = np.zeros((h + pt + pb, w + pl + pr), x.dtype)
            region[pt - ct : pt + h + cb_, pl - cl : pl + w + cr] = 1
            count = _windows(region[None, None], r, s, strides, dil, oh, ow).sum(axis=(4, 5))
            out = win.sum(axis=(4, 5)) / count
        out = np.ascontiguousarray(out).astype(xs[0].dtype)
        return [block_channels(out, xs[0].shape[4]) if blocked else out]

    return run


register("max_pool2d", "anchor", _pool_infer, _pool_eval("max"))
register("avg_pool2d", "anchor", _pool_infer, _pool_eval("avg"))


def _global_pool_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x = inputs[0]
    shape = list(x.shape)
    shape[2] = shape[3] = 1
    return [TensorType(tuple(shape), x.dtype, x.layout)]


register(
    "global_avg_pool",
    "anchor",
    _global_pool_infer,
    lambda xs, a: [xs[0].mean(axis=(2, 3), keepdims=True).astype(xs[0].dtype)],
)
register(
    "global_max_pool", "anchor", _global_pool_infer, lambda xs, a: [xs[0].max(axis=(2, 3), keepdims=True)]
)


def _lrn_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    x = xs[0]
    size, alpha, beta, bias = a["size"], a["alpha"], a["beta"], a["bias"]
    c = x.shape[1]
    sq = np.pad(x * x, ((0, 0), ((size - 1) // 2, size - 1 - (size - 1) // 2), (0, 0), (0, 0)))
    acc = sum(sq[:, i : i + c] for i in range(size))
    return [(x / (bias + alpha / size * acc) ** beta).astype(x.dtype)]


register("lrn", "anchor", _same, _lrn_eval)


def _softmax_eval(log: bool) -> EvalFn:
    def run(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
        x = xs[0]  # [outer, D, inner], normalized over axis 1
        m = x.max(axis=1, keepdims=True)
        e = np.exp(x - m)
        ssum = e.sum(axis=1, keepdims=True)
        out = (x - m - np.log(ssum)) if log else e / ssum
        return [out.astype(x.dtype)]

    return run


def _rank3(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    if inputs[0].rank != 3:
        raise ShapeError(f"expected a [outer, axis, inner] view, got {list(inputs[0].shape)}")
    return _same(inputs, a)


register("softmax", "anchor", _rank3, _softmax_eval(False))
register("log_softmax", "anchor", _rank3, _softmax_eval(True))


def _layer_norm_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    x, scale, bias = xs  # x [outer, D]
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return [((x - mean) / np.sqrt(var + a["epsilon"]) * scale + bias).astype(x.dtype)]


def _layer_norm_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x = inputs[0]
    if x.rank != 2 or inputs[1].shape != (x.shape[1],) or inputs[2].shape != (x.shape[1],):
        raise ShapeError(f"layer_norm expects x[outer, D], scale[D], bias[D]; got {[list(t.shape) for t in inputs]}")
    return _same(inputs, a)


register("layer_norm", "anchor", _layer_norm_infer, _layer_norm_eval)

REDUCERS: dict[str, Callable[..., np.ndarray]] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "prod": np.prod,
    "sum_square": lambda x, axis: np.sum(x * x, axis=axis),
}


def _reduce_infer(inputs: Sequence[TensorType], a: Attrs) -> list[TensorType]:
    x = inputs[0]
    if x.rank != 3:
        raise ShapeError(f"reduce expects an [outer, reduced, inner] view, got {list(x.shape)}")
    return [TensorType((x.shape[0], x.shape[2]), x.dtype)]


register(
    "reduce",
    "anchor",
    _reduce_infer,
    lambda xs, a: [np.asarray(REDUCERS[a["kind"]](xs[0], axis=1)).astype(xs[0].dtype)],
)


def _bn_eval(xs: Sequence[np.ndarray], a: Attrs) -> list[np.ndarray]:
    x, scale, bias, mean, var = xs
    shape = (1, -1) + (1,) * (x.ndim - 2)
    k = scale / np.sqrt(var + a["epsilon"])
    return [(x * k.reshape(shape) + (bias - mean * k).reshape(shape)).astype(x.dtype)]


register("batch_norm", "anchor", _same, _bn_eval)
