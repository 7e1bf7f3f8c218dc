"""ONNX operator handlers: one function per ONNX op type, emitting canonical ops (see woodpecker.ir.ops).

A handler receives the import context, the NodeProto and its decoded attributes, and returns the woodpecker value
name of each ONNX output (None for an optional output that is not supported; it is an error only if used).
Attribute-vs-input differences between opsets (Clip, Pad, Slice, Split, Squeeze, Reduce*) are handled here.
"""

from __future__ import annotations


import numpy as np
import onnx

from woodpecker.frontend import onnx_ops_spatial  # rank-5 convolution and pooling are delegated to it
from woodpecker.frontend.context import ONNX_DTYPES, ImportContext
from woodpecker.frontend.op_base import (  # noqa: F401 (HANDLERS, Handler: the table other modules read)
    HANDLERS,
    Handler,
    _axis,
    _emit,
    _pool_common,
    _reshape,
    _spatial_pads,
    handles,
)
from woodpecker.ir import ops


# ----------------------------------------------------------------------------------------------------------------
# elementwise

_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Reciprocal": "reciprocal",
    "Neg": "neg",
    "Abs": "abs",
    "Floor": "floor",
    "Ceil": "ceil",
    "Erf": "erf",
    "Softplus": "softplus",
    "HardSwish": "hard_swish",
    "Round": "round",
    **{op: op.lower() for op in ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh")},
}


@handles(*_UNARY)
def _unary(ctx, node, attrs):
    return [_emit(ctx, node, _UNARY[node.op_type], [ctx.input(node, 0)])]


@handles("Identity", "Dropout")
def _identity(ctx, node, attrs):
    if node.op_type == "Dropout" and ctx.opset >= 12 and ctx.has_input(node, 2):
        # Dropout is the identity at inference. A training_mode input that is true, or only known at run time,
        # asks for random dropping: refuse it rather than silently compute the identity.
        training = ctx.const(node, 2, "training_mode")
        if bool(np.asarray(training).reshape(-1)[0]):
            # in training mode a ratio of exactly 0 drops nothing (the scale is 1 / (1 - 0)): the identity with an
            # all-true mask; any other ratio (0.5 when absent) draws a random mask
            ratio = ctx.const(node, 1, "ratio")
            if ratio is None or float(np.asarray(ratio).reshape(-1)[0]) != 0.0:
                raise ctx.fail(node, "training_mode=true (random dropout) is not supported in an inference compiler")
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        mask = np.ones(ctx.type_of(node, 0).shape, dtype=bool)
        return [ctx.input(node, 0), ctx.b.constant(mask, node.output[1])]
    return [ctx.input(node, 0)]


@handles("LeakyRelu")
def _leaky(ctx, node, attrs):
    return [_emit(ctx, node, "leaky_relu", [ctx.input(node, 0)], {"alpha": float(attrs.get("alpha", 0.01))})]


@handles("Elu")
def _elu(ctx, node, attrs):
    return [_emit(ctx, node, "elu", [ctx.input(node, 0)], {"alpha": float(attrs.get("alpha", 1.0))})]


@handles("HardSigmoid")
def _hard_sigmoid(ctx, node, attrs):
    a = {"alpha": float(attrs.get("alpha", 0.2)), "beta": float(attrs.get("beta", 0.5))}
    return [_emit(ctx, node, "hard_sigmoid", [ctx.input(node, 0)], a)]


@handles("Gelu")
def _gelu(ctx, node, attrs):
    return [_emit(ctx, node, "gelu", [ctx.input(node, 0)], {"approximate": attrs.get("approximate", "none")})]


@handles("Clip")
def _clip(ctx, node, attrs):
    x = ctx.input(node, 0)
    if ctx.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    elif any(ctx.has_input(node, i) and not ctx.b.is_constant(ctx.input(node, i)) for i in (1, 2)):
        # Bounds known only at run time: min(max(x, lo), hi) as two elementwise ops on the scalar bounds (when
        # lo > hi this gives hi, as ONNX specifies).
        for i, op in ((1, "maximum"), (2, "minimum")):
            if ctx.has_input(node, i):
                x = ctx.b.emit1(op, [x, ctx.input(node, i)], name=node.name or "clip")
        return [x]
    else:
        lo_v, hi_v = ctx.const(node, 1, "min"), ctx.const(node, 2, "max")
        lo = None if lo_v is None else _clip_bound(lo_v, ctx.b.type_of(x).dtype)
        hi = None if hi_v is None else _clip_bound(hi_v, ctx.b.type_of(x).dtype)
    return [_emit(ctx, node, "clip", [x], {"min": lo, "max": hi})]


def _clip_bound(value: np.ndarray, dtype: str) -> float | int:
    v = np.asarray(value).reshape(-1)[0]
    return float(v) if dtype.startswith("float") else int(v)


_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "equal",
           "Less": "less", "Greater": "greater"}


def _legacy_broadcast(ctx: ImportContext, node: onnx.NodeProto, attrs: dict, b: str) -> str:
    # Opsets < 7 had explicit broadcast with an axis; we import opset >= 7 only, but some exporters still set it.
    if attrs.get("broadcast") and "axis" in attrs:
        a_rank = ctx.type_of(node, 0).rank
        b_shape = ctx.b.type_of(b).shape
        axis = _axis(attrs["axis"], a_rank)
        return _reshape(ctx, b, tuple(b_shape) + (1,) * (a_rank - axis - len(b_shape)))
    return b


@handles(*_BINARY)
def _binary(ctx, node, attrs):
    a, b = ctx.input(node, 0), _legacy_broadcast(ctx, node, attrs, ctx.input(node, 1))
    if node.op_type == "Pow" and ctx.b.is_constant(b) and ctx.b.constants[b].size == 1:
        exponent = float(ctx.b.constants[b])
        if exponent == 2.0:  # x*x is exact and much cheaper than pow
            return [_emit(ctx, node, "mul", [a, a])]
        if exponent == 0.5:
            return [_emit(ctx, node, "sqrt", [a])]
    ta, tb = ctx.b.type_of(a), ctx.b.type_of(b)
    if ta.dtype != tb.dtype and ctx.b.is_constant(b):
        b = ctx.b.constant(ctx.b.constants[b].astype(ta.dtype), node.input[1])
    return [_emit(ctx, node, _BINARY[node.op_type], [a, b])]


@handles("Sum", "Max", "Min", "Mean")
def _variadic(ctx, node, attrs):
    op = {"Sum": "add", "Mean": "add", "Max": "maximum", "Min": "minimum"}[node.op_type]
    acc = ctx.input(node, 0)
    for i in range(1, len(node.input)):
        acc = ctx.b.emit1(op, [acc, ctx.input(node, i)], name=node.name or op)
    if node.op_type == "Mean" and len(node.input) > 1:
        acc = ctx.b.emit1("div", [acc, ctx.b.constant(np.float32(len(node.input)), "count")], name=node.name or "mean")
    return [acc]


@handles("Where")
def _where(ctx, node, attrs):
    return [_emit(ctx, node, "where", [ctx.input(node, i) for i in range(3)])]


@handles("Not")
def _not(ctx, node, attrs):
    x = ctx.input(node, 0)
    false = ctx.b.constant(np.array(False), "false")
    return [_emit(ctx, node, "equal", [x, false])]


# ----------------------------------------------------------------------------------------------------------------
# convolution, normalization, pooling


def _as_2d(ctx, node, x: str) -> tuple[str, bool]:
    """Conv1d/pool1d run as 2-D with H=1."""
    t = ctx.b.type_of(x)
    if t.rank == 4:
        return x, False
    if t.rank == 3:
        n, c, w = t.shape
        return _reshape(ctx, x, (n, c, 1, w)), True
    raise ctx.fail(node, f"only 1-D and 2-D spatial inputs are supported, got rank {t.rank}")


def _lift_1d(values: list, attrs: dict, one_d: bool) -> dict:
    if not one_d:
        return attrs
    attrs = dict(attrs)
    for key, fill in (("kernel_shape", 1), ("strides", 1), ("dilations", 1)):
        if key in attrs:
            attrs[key] = [fill] + list(attrs[key])
    if "pads" in attrs:
        p = list(attrs["pads"])
        attrs["pads"] = [0, p[0], 0, p[1]]
    return attrs


@handles("Conv")
def _conv(ctx, node, attrs):
    if ctx.type_of(node, 0).rank == 5:
        return onnx_ops_spatial.conv3d(ctx, node, attrs)
    x, one_d = _as_2d(ctx, node, ctx.input(node, 0))
    w = ctx.input(node, 1)
    wt = ctx.b.type_of(w)
    attrs = _lift_1d([], attrs, one_d)
    if one_d:
        w = _reshape(ctx, w, (wt.shape[0], wt.shape[1], 1, wt.shape[2]))
        wt = ctx.b.type_of(w)
    kernel = tuple(attrs.get("kernel_shape", wt.shape[2:]))
    strides = tuple(attrs.get("strides", (1, 1)))
    dilations = tuple(attrs.get("dilations", (1, 1)))
    xt = ctx.b.type_of(x)
    pads = _spatial_pads(ctx, node, attrs, xt.shape[2:], kernel, strides, dilations)
    conv_attrs = {"strides": strides, "dilations": dilations, "pads": pads, "groups": int(attrs.get("group", 1))}
    y = _emit(ctx, node, "conv2d", [x, w], conv_attrs)
    if ctx.has_input(node, 2):
        bias = ctx.input(node, 2)
        k = ctx.b.type_of(bias).shape[0]
        y = ctx.b.emit1("add", [y, _reshape(ctx, bias, (1, k, 1, 1))], name=(node.name or "conv") + "_bias")
    if one_d:
        n, k, _, ow = ctx.b.type_of(y).shape
        y = _reshape(ctx, y, (n, k, ow))
    return [y]


@handles("BatchNormalization")
def _batch_norm(ctx, node, attrs):
    if attrs.get("training_mode", 0):
        raise ctx.fail(node, "training_mode=1 is not supported in an inference compiler")
    x = ctx.input(node, 0)
    params = [ctx.input(node, i) for i in range(1, 5)]
    y = _emit(ctx, node, "batch_norm", [x, *params], {"epsilon": float(attrs.get("epsilon", 1e-5))})
    return [y] + [None] * (len(node.output) - 1)


@handles("MaxPool", "AveragePool")
def _pool(ctx, node, attrs):
    with_indices = node.op_type == "MaxPool" and len(node.output) > 1 and bool(node.output[1])
    if ctx.type_of(node, 0).rank == 5:
        if with_indices:
            raise ctx.fail(node, "the Indices output of a 3-D MaxPool is not supported")
        return onnx_ops_spatial.pool3d(ctx, node, attrs)
    x, one_d = _as_2d(ctx, node, ctx.input(node, 0))
    attrs = _lift_1d([], attrs, one_d)
    pool_attrs, explicit = _pool_common(ctx, node, attrs, x)
    indices = None
    if node.op_type == "MaxPool":
        y = _emit(ctx, node, "max_pool2d", [x], pool_attrs)
        if with_indices:  # (storage_order only changes the numbering of Indices)
            order = int(attrs.get("storage_order", 0))
            indices = onnx_ops_spatial.max_pool_indices(ctx, node, x, y, pool_attrs, order)
    else:
        pool_attrs["count_pads"] = explicit if attrs.get("count_include_pad", 0) else (0, 0, 0, 0)
        y = _emit(ctx, node, "avg_pool2d", [x], pool_attrs)
    if one_d:
        n, c, _, ow = ctx.b.type_of(y).shape
        y = _reshape(ctx, y, (n, c, ow))
        indices = None if indices is None else _reshape(ctx, indices, (n, c, ow))
    return [y] if indices is None else [y, indices]


@handles("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, node, attrs):
    t = ctx.type_of(node, 0)
    if t.rank == 5:  # over (D, H, W): the same reduction as over (D * H, W)
        n, c, d, h, w = t.shape
        x = _reshape(ctx, ctx.input(node, 0), (n, c, d * h, w))
        y = _emit(ctx, node, "global_avg_pool" if node.op_type == "GlobalAveragePool" else "global_max_pool", [x])
        return [_reshape(ctx, y, (n, c, 1, 1, 1))]
    x, one_d = _as_2d(ctx, node, ctx.input(node, 0))
    y = _emit(ctx, node, "global_avg_pool" if node.op_type == "GlobalAveragePool" else "global_max_pool", [x])
    if one_d:
        n, c = ctx.b.type_of(y).shape[:2]
        y = _reshape(ctx, y, (n, c, 1))
    return [y]


@handles("LRN")
def _lrn(ctx, node, attrs):
    a = {"size": int(attrs["size"]), "alpha": float(attrs.get("alpha", 1e-4)), "beta": float(attrs.get("beta", 0.75)),
         "bias": float(attrs.get("bias", 1.0))}
    x = ctx.input(node, 0)
    if ctx.b.type_of(x).rank != 4:
        raise ctx.fail(node, "LRN is supported on 4-D inputs only")
    return [_emit(ctx, node, "lrn", [x], a)]


@handles("LayerNormalization")
def _layer_norm(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    axis = _axis(int(attrs.get("axis", -1)), t.rank)
    outer, d = int(np.prod(t.shape[:axis])), int(np.prod(t.shape[axis:]))
    scale = _reshape(ctx, ctx.input(node, 1), (d,)) if ctx.has_input(node, 1) else ctx.b.constant(np.ones(d, np.float32))
    if ctx.has_input(node, 2):
        bias = _reshape(ctx, ctx.input(node, 2), (d,))
    else:
        bias = ctx.b.constant(np.zeros(d, np.float32), "zero_bias")
    eps = float(attrs.get("epsilon", 1e-5))
    y = _emit(ctx, node, "layer_norm", [_reshape(ctx, x, (outer, d)), scale, bias], {"epsilon": eps})
    results: list[str | None] = [_reshape(ctx, y, t.shape)]
    if any(node.output[1:]):
        # The optional Mean and InvStdDev outputs (shape [..., 1, ...] from `axis` on), computed apart: the
        # layer_norm kernel keeps its statistics to itself. Only what the graph asks for is emitted.
        stat_shape = tuple(t.shape[:axis]) + (1,) * (t.rank - axis)
        mean = _emit(ctx, node, "reduce", [_reshape(ctx, x, (outer, d, 1))], {"kind": "mean"})
        results.append(_reshape(ctx, mean, stat_shape))
        if len(node.output) > 2 and node.output[2]:
            diff = ctx.b.emit1("sub", [_reshape(ctx, x, (outer, d)), mean], name=node.name or "layer_norm")
            var = _emit(ctx, node, "reduce", [_reshape(ctx, ctx.b.emit1("mul", [diff, diff]), (outer, d, 1))],
                        {"kind": "mean"})
            std = ctx.b.emit1("sqrt", [ctx.b.emit1("add", [var, ctx.b.constant(np.float32(eps), "epsilon")])])
            results.append(_reshape(ctx, ctx.b.emit1("reciprocal", [std]), stat_shape))
    return results


@handles("Softmax", "LogSoftmax")
def _softmax(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    if ctx.opset < 13:
        # Old semantics: flatten to 2-D at `axis` and normalize over the whole second part.
        axis = _axis(int(attrs.get("axis", 1)), t.rank)
        view = (int(np.prod(t.shape[:axis])), int(np.prod(t.shape[axis:])), 1)
    else:
        axis = _axis(int(attrs.get("axis", -1)), t.rank)
        view = (int(np.prod(t.shape[:axis])), t.shape[axis], int(np.prod(t.shape[axis + 1 :])))
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    y = _emit(ctx, node, op, [_reshape(ctx, x, view)])
    return [_reshape(ctx, y, t.shape)]


# ----------------------------------------------------------------------------------------------------------------
# matrix products


@handles("Gemm")
def _gemm(ctx, node, attrs):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if attrs.get("transA", 0):
        a = ctx.b.emit1("transpose", [a], {"perm": (1, 0)})
    if ctx.b.is_constant(b):
        w = ctx.b.constants[b]
        w = w if attrs.get("transB", 0) else w.T  # dense wants [N, K]
        if alpha != 1.0:
            w = w * np.float32(alpha)
        y = _emit(ctx, node, "dense", [a, ctx.b.constant(np.ascontiguousarray(w), node.input[1])])
    else:
        if attrs.get("transB", 0):
            b = ctx.b.emit1("transpose", [b], {"perm": (1, 0)})
        y = _matmul_values(ctx, node, a, b)
        if alpha != 1.0:
            y = ctx.b.emit1("mul", [y, ctx.b.constant(np.float32(alpha), "alpha")])
    if ctx.has_input(node, 2) and beta != 0.0:
        c = ctx.input(node, 2)
        if beta != 1.0:
            c = ctx.b.emit1("mul", [c, ctx.b.constant(np.float32(beta), "beta")])
        y = ctx.b.emit1("add", [y, c], name=(node.name or "gemm") + "_bias")
    return [y]


def _matmul_values(ctx: ImportContext, node: onnx.NodeProto, a: str, b: str) -> str:
    ta, tb = ctx.b.type_of(a), ctx.b.type_of(b)
    squeeze_front = squeeze_back = False
    if ta.rank == 1:
        a, squeeze_front = _reshape(ctx, a, (1, ta.shape[0])), True
        ta = ctx.b.type_of(a)
    if tb.rank == 1:
        b, squeeze_back = _reshape(ctx, b, (tb.shape[0], 1)), True
        tb = ctx.b.type_of(b)
    m, k = ta.shape[-2:]
    k2, n = tb.shape[-2:]
    if k != k2:
        raise ctx.fail(node, f"inner dimensions differ: {list(ta.shape)} x {list(tb.shape)}")
    batch = ops.broadcast_shape(ta.shape[:-2], tb.shape[:-2])
    if ctx.b.is_constant(b) and tb.rank == 2:
        # x @ W with a constant weight: a dense layer over all leading rows ([..., M, K] viewed as [rows, K]).
        rows = int(np.prod(ta.shape[:-1]))
        w = ctx.b.constant(np.ascontiguousarray(ctx.b.constants[b].T), node.input[1] if node.input else "w")
        y = ctx.b.emit1("dense", [_reshape(ctx, a, (rows, k)), w], name=node.name or "matmul")
        out_shape = tuple(ta.shape[:-1]) + (n,)
    else:
        nb = int(np.prod(batch)) if batch else 1
        operands = []
        for v, t, tail in ((a, ta, (m, k)), (b, tb, (k, n))):
            own = int(np.prod(t.shape[:-2])) if t.rank > 2 else 1
            if own not in (1, nb):  # partial broadcast: materialize the full batch
                v = ctx.b.emit1("expand", [v], {"shape": tuple(batch) + tail})
                own = nb
            operands.append(_reshape(ctx, v, (own,) + tail))
        y = ctx.b.emit1("batch_matmul", operands, name=node.name or "matmul")
        out_shape = tuple(batch) + (m, n)
    if squeeze_front:
        out_shape = out_shape[:-2] + out_shape[-1:]
    if squeeze_back:
        out_shape = out_shape[:-1]
    return _reshape(ctx, y, out_shape)


@handles("MatMul")
def _matmul(ctx, node, attrs):
    return [_matmul_values(ctx, node, ctx.input(node, 0), ctx.input(node, 1))]


# ----------------------------------------------------------------------------------------------------------------
# shape manipulation


@handles("Flatten")
def _flatten(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    # axis is in [-r, r]: a negative one counts from the back of the rank-r input (-1 is r - 1, not r)
    axis = int(attrs.get("axis", 1))
    if not -t.rank <= axis <= t.rank:
        raise ValueError(f"axis {axis} is out of range for rank {t.rank}")
    axis = axis + t.rank if axis < 0 else axis
    return [_reshape(ctx, x, (int(np.prod(t.shape[:axis])), int(np.prod(t.shape[axis:]))))]


@handles("Reshape")
def _reshape_op(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    target = ctx.const(node, 1, "shape") if ctx.opset >= 5 else np.array(attrs["shape"])
    shape = [int(d) for d in np.asarray(target).reshape(-1)]
    allowzero = int(attrs.get("allowzero", 0))
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            shape[i] = t.shape[i]
    if shape.count(-1) > 1:
        raise ctx.fail(node, f"shape {shape} has more than one -1")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        if known == 0 or t.size % known:
            raise ctx.fail(node, f"cannot reshape {list(t.shape)} to {shape}")
        shape[shape.index(-1)] = t.size // known
    return [_reshape(ctx, x, shape)]


def _axes_arg(ctx, node, attrs, first_input_opset: int, index: int = 1) -> list[int] | None:
    if ctx.opset >= first_input_opset:
        value = ctx.const(node, index, "axes")
        return None if value is None else [int(a) for a in np.asarray(value).reshape(-1)]
    return list(attrs["axes"]) if "axes" in attrs else None


@handles("Squeeze")
def _squeeze(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    axes = _axes_arg(ctx, node, attrs, 13)
    axes = [i for i, d in enumerate(t.shape) if d == 1] if axes is None else [_axis(a, t.rank) for a in axes]
    for a in axes:
        if t.shape[a] != 1:
            raise ctx.fail(node, f"cannot squeeze axis {a} of size {t.shape[a]}")
    return [_reshape(ctx, x, [d for i, d in enumerate(t.shape) if i not in axes])]


@handles("Unsqueeze")
def _unsqueeze(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    axes = _axes_arg(ctx, node, attrs, 13)
    rank = t.rank + len(axes)
    axes = sorted(_axis(a, rank) for a in axes)
    shape = list(t.shape)
    for a in axes:
        shape.insert(a, 1)
    return [_reshape(ctx, x, shape)]


@handles("Transpose")
def _transpose(ctx, node, attrs):
    x = ctx.input(node, 0)
    rank = ctx.b.type_of(x).rank
    perm = tuple(int(p) for p in attrs.get("perm", range(rank - 1, -1, -1)))
    if perm == tuple(range(rank)):
        return [x]
    return [_emit(ctx, node, "transpose", [x], {"perm": perm})]


@handles("Concat")
def _concat(ctx, node, attrs):
    values = [ctx.input(node, i) for i in range(len(node.input)) if ctx.has_input(node, i)]
    values = [v for v in values if ctx.b.type_of(v).size > 0 or ctx.b.type_of(v).rank == 0]
    rank = ctx.b.type_of(values[0]).rank
    axis = _axis(int(attrs["axis"]), rank)
    if len(values) == 1:
        return [values[0]]
    return [_emit(ctx, node, "concat", values, {"axis": axis})]


def _normalize_slice(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    if step == 0:
        raise ValueError("slice step must not be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        # ONNX clamps a backward start to [0, dim - 1] (a start before the first element still takes element 0)
        # and the end to [-1, dim - 1] (-1: up to and including element 0)
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return start, end


@handles("Slice")
def _slice(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    if ctx.opset < 10:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(v) for v in ctx.const(node, 1, "starts").reshape(-1)]
        ends = [int(v) for v in ctx.const(node, 2, "ends").reshape(-1)]
        ax = ctx.const(node, 3, "axes")
        axes = list(range(len(starts))) if ax is None else [int(v) for v in ax.reshape(-1)]
        st = ctx.const(node, 4, "steps")
        steps = [1] * len(starts) if st is None else [int(v) for v in st.reshape(-1)]
    begin, stop, stride = [0] * t.rank, list(t.shape), [1] * t.rank
    for s, e, a, k in zip(starts, ends, axes, steps):
        a = _axis(a, t.rank)
        e = max(min(e, 2**62), -(2**62))
        begin[a], stop[a] = _normalize_slice(s, e, k, t.shape[a])
        stride[a] = k
    if begin == [0] * t.rank and stop == list(t.shape) and stride == [1] * t.rank:
        return [x]
    return [_emit(ctx, node, "slice", [x], {"starts": tuple(begin), "ends": tuple(stop), "steps": tuple(stride)})]


@handles("Split")
def _split(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    axis = _axis(int(attrs.get("axis", 0)), t.rank)
    if ctx.opset >= 13 and ctx.has_input(node, 1):
        sizes = [int(v) for v in ctx.const(node, 1, "split").reshape(-1)]
    elif "split" in attrs:
        sizes = list(attrs["split"])
    else:
        parts = int(attrs.get("num_outputs", len(node.output)))
        chunk = -(-t.shape[axis] // parts)
        sizes = [min(chunk, t.shape[axis] - i * chunk) for i in range(parts)]
    if sum(sizes) != t.shape[axis]:
        raise ctx.fail(node, f"split sizes {sizes} do not add up to {t.shape[axis]}")
    outs, offset = [], 0
    for size in sizes:
        starts, ends = [0] * t.rank, list(t.shape)
        starts[axis], ends[axis] = offset, offset + size
        outs.append(ctx.b.emit1("slice", [x], {"starts": tuple(starts), "ends": tuple(ends), "steps": (1,) * t.rank},
                                name=node.name or "split"))
        offset += size
    return outs


@handles("Pad")
def _pad(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    mode = attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.fail(node, f"mode={mode!r} is not supported")
    if ctx.opset < 11:
        pads, value = list(attrs["pads"]), float(attrs.get("value", 0.0))
    else:
        pads = [int(v) for v in ctx.const(node, 1, "pads").reshape(-1)]
        cv = ctx.const(node, 2, "constant_value")
        value = 0.0 if cv is None else float(np.asarray(cv).reshape(-1)[0])
        axes_v = ctx.const(node, 3, "axes")
        if axes_v is not None:
            axes = [_axis(int(a), t.rank) for a in axes_v.reshape(-1)]
            full = [0] * (2 * t.rank)
            for i, a in enumerate(axes):
                full[a], full[a + t.rank] = pads[i], pads[i + len(axes)]
            pads = full
    if any(p < 0 for p in pads):
        raise ctx.fail(node, "negative pads (cropping) are not supported")
    if not any(pads):
        return [x]
    return [_emit(ctx, node, "pad", [x], {"pads": tuple(pads), "mode": mode, "value": value})]


@handles("Expand")
def _expand(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    target = [int(v) for v in ctx.const(node, 1, "shape").reshape(-1)]
    shape = ops.broadcast_shape(t.shape, target)
    if shape == t.shape:
        return [x]
    return [_emit(ctx, node, "expand", [x], {"shape": shape})]


@handles("Gather")
def _gather(ctx, node, attrs):
    data, idx = ctx.input(node, 0), ctx.input(node, 1)
    t = ctx.b.type_of(data)
    axis = _axis(int(attrs.get("axis", 0)), t.rank)
    if ctx.b.is_constant(idx):
        ids = ctx.b.constants[idx]
        if np.any(ids >= t.shape[axis]) or np.any(ids < -t.shape[axis]):
            raise ctx.fail(node, f"index out of range for axis {axis} of size {t.shape[axis]}")
    return [_emit(ctx, node, "gather", [data, idx], {"axis": axis})]


@handles("Shape")
def _shape(ctx, node, attrs):
    shape = np.array(ctx.type_of(node, 0).shape, dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return [ctx.b.constant(shape[start:end], node.output[0])]


@handles("Size")
def _size(ctx, node, attrs):
    return [ctx.b.constant(np.array(ctx.type_of(node, 0).size, dtype=np.int64), node.output[0])]


@handles("Constant")
def _constant(ctx, node, attrs):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            value = np.asarray(attrs[key])
            if key in ("value_int", "value_ints"):
                value = value.astype(np.int64)
            elif key in ("value_float", "value_floats"):
                value = value.astype(np.float32)
            return [ctx.b.constant(value, node.output[0])]
    raise ctx.fail(node, f"constant attribute {sorted(attrs)} is not supported")


@handles("ConstantOfShape")
def _constant_of_shape(ctx, node, attrs):
    shape = [int(v) for v in ctx.const(node, 0, "shape").reshape(-1)]
    fill = np.asarray(attrs.get("value", np.zeros(1, np.float32))).reshape(-1)
    return [ctx.b.constant(np.full(shape, fill[0], dtype=fill.dtype), node.output[0])]


@handles("Range")
def _range(ctx, node, attrs):
    start, limit, delta = (ctx.const(node, i, n) for i, n in enumerate(("start", "limit", "delta")))
    return [ctx.b.constant(np.arange(start, limit, delta).astype(start.dtype), node.output[0])]


# ----------------------------------------------------------------------------------------------------------------
# reductions

_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min",
           "ReduceSumSquare": "sum_square"}


@handles(*_REDUCE)
def _reduce(ctx, node, attrs):
    x = ctx.input(node, 0)
    first_input_opset = 13 if node.op_type == "ReduceSum" else 18
    axes = _axes_arg(ctx, node, attrs, first_input_opset)
    if not axes and attrs.get("noop_with_empty_axes", 0):
        return [x]
    kind, keepdims = _REDUCE[node.op_type], int(attrs.get("keepdims", 1))
    y = _reduce_value(ctx, node, x, kind, axes, keepdims)
    t = ctx.b.type_of(x)
    if kind in ("max", "min") and t.dtype.startswith("float") and t.rank > 0:
        # TVM's float max (min) reduction starts from the lowest (highest) finite value, not -inf (inf), so a row
        # of only -inf (inf) would reduce to a finite number; graphs test for exactly that (attention's "row fully
        # masked"). Such rows are found by a second max reduction, over 0/1 flags (exact: the row is not empty).
        infinity = _scalar(ctx, x, -np.inf if kind == "max" else np.inf)
        flags = ctx.b.emit1("where", [ctx.b.emit1("equal", [x, infinity]), _scalar(ctx, x, 0), _scalar(ctx, x, 1)])
        any_other = _reduce_value(ctx, node, flags, "max", axes, keepdims)
        only_infinity = ctx.b.emit1("equal", [any_other, _scalar(ctx, x, 0)])
        y = _emit(ctx, node, "where", [only_infinity, infinity, y])
    return [y]


@handles("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
def _reduce_composite(ctx, node, attrs):
    """Norms and log-sums as a sum reduction with elementwise ops before and after (fused into its kernels)."""
    x = ctx.input(node, 0)
    axes = _axes_arg(ctx, node, attrs, 18)
    if not axes and attrs.get("noop_with_empty_axes", 0):
        return [x]
    keepdims = int(attrs.get("keepdims", 1))
    op = node.op_type
    if op == "ReduceL1":
        return [_reduce_value(ctx, node, ctx.b.emit1("abs", [x]), "sum", axes, keepdims)]
    if op == "ReduceL2":
        return [ctx.b.emit1("sqrt", [_reduce_value(ctx, node, x, "sum_square", axes, keepdims)])]
    if op == "ReduceLogSum":
        return [ctx.b.emit1("log", [_reduce_value(ctx, node, x, "sum", axes, keepdims)])]
    # log(sum(exp(x - m))) + m with m the max: exp(x) alone overflows float32 above x = 88
    m = _reduce_value(ctx, node, x, "max", axes, 1)
    shifted = ctx.b.emit1("exp", [ctx.b.emit1("sub", [x, m])])
    total = ctx.b.emit1("log", [_reduce_value(ctx, node, shifted, "sum", axes, 1)])
    out = ctx.b.emit1("add", [total, m])
    if not keepdims:
        t = ctx.b.type_of(x)
        kept = set(range(t.rank)) - ({_axis(a, t.rank) for a in axes} if axes else set(range(t.rank)))
        out = _reshape(ctx, out, [d for i, d in enumerate(t.shape) if i in kept])
    return [out]


def _reduce_value(ctx, node, x: str, kind: str, axes: list[int] | None, keepdims: int) -> str:
    """x reduced over `axes` (None or []: all) with the reduce op's `kind`, ONNX's keepdims semantics."""
    t = ctx.b.type_of(x)
    if t.rank == 0:  # a scalar reduces over no axis to itself (a sum of squares to its square)
        return ctx.b.emit1("mul", [x, x]) if kind == "sum_square" else x
    if not axes:
        axes = list(range(t.rank))
    axes = sorted({_axis(a, t.rank) for a in axes})
    out_shape = [1 if i in axes else d for i, d in enumerate(t.shape)] if keepdims else \
        [d for i, d in enumerate(t.shape) if i not in axes]
    if axes != list(range(axes[0], axes[-1] + 1)):
        # Non-adjacent axes: move them together first so that the reduction reads one contiguous block.
        rest = [i for i in range(t.rank) if i not in axes]
        perm = tuple(rest[: sum(1 for r in rest if r < axes[0])] + axes + rest[sum(1 for r in rest if r < axes[0]):])
        x = ctx.b.emit1("transpose", [x], {"perm": perm})
        t = ctx.b.type_of(x)
        axes = list(range(perm.index(axes[0]), perm.index(axes[0]) + len(axes)))
    view = (int(np.prod(t.shape[: axes[0]])), int(np.prod([t.shape[a] for a in axes])),
            int(np.prod(t.shape[axes[-1] + 1 :])))
    if view[1] == 0:
        # An empty reduction is the reducer's identity (ONNX: 0 for sums, -inf for max, inf for min); a kernel
        # reducing over no element would leave its output unwritten.
        return ctx.b.constant(np.full(out_shape, _empty_reduction(kind, t.dtype), dtype=t.dtype), node.output[0])
    if t.dtype == "bool":
        # max/min of booleans are any/all: reduce them as uint8 (TVM has no bool reduction identities)
        y = _emit(ctx, node, "reduce", [_reshape(ctx, ctx.b.emit1("cast", [x], {"to": "uint8"}), view)], {"kind": kind})
        return _reshape(ctx, ctx.b.emit1("cast", [y], {"to": "bool"}), out_shape)
    if kind == "mean" and not t.dtype.startswith("float"):
        # The reduce_mean template divides in float; an integer mean is the sum divided (truncating) by the count.
        total = _emit(ctx, node, "reduce", [_reshape(ctx, x, view)], {"kind": "sum"})
        y = ctx.b.emit1("div", [total, ctx.b.constant(np.array(view[1], dtype=t.dtype), "count")], name=node.name or "mean")
    else:
        y = _emit(ctx, node, "reduce", [_reshape(ctx, x, view)], {"kind": kind})
    return _reshape(ctx, y, out_shape)


def _empty_reduction(kind: str, dtype: str):
    if kind in ("sum", "sum_square"):
        return 0
    if kind == "mean":
        return np.nan if dtype.startswith("float") else 0
    floating = dtype.startswith("float")
    if kind == "max":
        return -np.inf if floating else (False if dtype == "bool" else np.iinfo(dtype).min)
    return np.inf if floating else (True if dtype == "bool" else np.iinfo(dtype).max)


# ----------------------------------------------------------------------------------------------------------------
# composite operators: decomposed into canonical ops, which fusion puts back into one kernel


def _scalar(ctx: ImportContext, like: str, value: float | int | bool, hint: str = "c") -> str:
    """A scalar constant in the dtype of value `like`."""
    return ctx.b.constant(np.array(value, dtype=ctx.b.type_of(like).dtype), hint)


@handles("PRelu")
def _prelu(ctx, node, attrs):
    x, slope = ctx.input(node, 0), ctx.input(node, 1)
    xt, st = ctx.b.type_of(x), ctx.b.type_of(slope)
    if ctx.opset < 7 and st.rank == 1 and xt.rank > 2 and st.shape[0] == xt.shape[1] > 1:
        # PRelu-6 applies a [C] slope per channel (Caffe2's semantics); from PRelu-7 on it broadcasts numpy-style
        slope = _reshape(ctx, slope, (st.shape[0],) + (1,) * (xt.rank - 2))
    negative = ctx.b.emit1("less", [x, _scalar(ctx, x, 0)])
    return [_emit(ctx, node, "where", [negative, ctx.b.emit1("mul", [x, slope]), x])]


@handles("Selu")
def _selu(ctx, node, attrs):
    x = ctx.input(node, 0)
    alpha, gamma = float(attrs.get("alpha", 1.67326319217681884765625)), float(attrs.get("gamma", 1.05070102214813232421875))
    pos = ctx.b.emit1("mul", [x, _scalar(ctx, x, gamma)])
    neg = ctx.b.emit1("mul", [ctx.b.emit1("sub", [ctx.b.emit1("exp", [x]), _scalar(ctx, x, 1.0)]), _scalar(ctx, x, alpha * gamma)])
    return [_emit(ctx, node, "where", [ctx.b.emit1("greater", [x, _scalar(ctx, x, 0.0)]), pos, neg])]


@handles("Celu")
def _celu(ctx, node, attrs):
    x = ctx.input(node, 0)
    alpha = float(attrs.get("alpha", 1.0))
    e = ctx.b.emit1("sub", [ctx.b.emit1("exp", [ctx.b.emit1("div", [x, _scalar(ctx, x, alpha)])]), _scalar(ctx, x, 1.0)])
    neg = ctx.b.emit1("minimum", [ctx.b.emit1("mul", [e, _scalar(ctx, x, alpha)]), _scalar(ctx, x, 0.0)])
    return [_emit(ctx, node, "add", [ctx.b.emit1("maximum", [x, _scalar(ctx, x, 0.0)]), neg])]


@handles("Softsign")
def _softsign(ctx, node, attrs):
    x = ctx.input(node, 0)
    return [_emit(ctx, node, "div", [x, ctx.b.emit1("add", [ctx.b.emit1("abs", [x]), _scalar(ctx, x, 1.0)])])]


@handles("ThresholdedRelu")
def _thresholded_relu(ctx, node, attrs):
    x = ctx.input(node, 0)
    above = ctx.b.emit1("greater", [x, _scalar(ctx, x, float(attrs.get("alpha", 1.0)))])
    return [_emit(ctx, node, "where", [above, x, _scalar(ctx, x, 0)])]


@handles("Shrink")
def _shrink(ctx, node, attrs):
    x = ctx.input(node, 0)
    lambd, bias = float(attrs.get("lambd", 0.5)), float(attrs.get("bias", 0.0))
    is_float = ctx.b.type_of(x).dtype.startswith("float")
    lo = ctx.b.emit1("less", [x, _scalar(ctx, x, -lambd if is_float else int(-lambd))])
    hi = ctx.b.emit1("greater", [x, _scalar(ctx, x, lambd if is_float else int(lambd))])
    b = _scalar(ctx, x, bias if is_float else int(bias))
    inner = ctx.b.emit1("where", [hi, ctx.b.emit1("sub", [x, b]), _scalar(ctx, x, 0)])
    return [_emit(ctx, node, "where", [lo, ctx.b.emit1("add", [x, b]), inner])]


@handles("Sign")
def _sign(ctx, node, attrs):
    x = ctx.input(node, 0)
    zero, one, minus = _scalar(ctx, x, 0), _scalar(ctx, x, 1), _scalar(ctx, x, -1 if ctx.b.type_of(x).dtype[0] != "u" else 0)
    inner = ctx.b.emit1("where", [ctx.b.emit1("less", [x, zero]), minus, zero])
    y = ctx.b.emit1("where", [ctx.b.emit1("greater", [x, zero]), one, inner])
    if ctx.b.type_of(x).dtype.startswith("float"):  # sign(NaN) is NaN
        y = ctx.b.emit1("where", [ctx.b.emit1("equal", [x, x]), y, x])
    return [y]


@handles("Mish")
def _mish(ctx, node, attrs):
    x = ctx.input(node, 0)
    return [_emit(ctx, node, "mul", [x, ctx.b.emit1("tanh", [ctx.b.emit1("softplus", [x])])])]


@handles("Swish")
def _swish(ctx, node, attrs):
    x = ctx.input(node, 0)
    alpha = float(attrs.get("alpha", 1.0))
    scaled = x if alpha == 1.0 else ctx.b.emit1("mul", [x, _scalar(ctx, x, alpha)])
    return [_emit(ctx, node, "mul", [x, ctx.b.emit1("sigmoid", [scaled])])]


@handles("IsNaN")
def _isnan(ctx, node, attrs):
    return [_emit(ctx, node, "isnan", [ctx.input(node, 0)])]


@handles("IsInf")
def _isinf(ctx, node, attrs):
    x = ctx.input(node, 0)
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    if not (pos or neg):
        return [ctx.b.constant(np.zeros(ctx.b.type_of(x).shape, dtype=bool), node.output[0])]
    inf = _emit(ctx, node, "isinf", [x])
    if pos and neg:
        return [inf]
    signed = ctx.b.emit1("greater" if pos else "less", [x, _scalar(ctx, x, 0.0)])
    return [ctx.b.emit1("where", [inf, signed, ctx.b.constant(np.array(False), "false")])]


@handles("And", "Or", "Xor")
def _logical(ctx, node, attrs):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    if node.op_type == "And":
        return [_emit(ctx, node, "where", [a, b, ctx.b.constant(np.array(False), "false")])]
    if node.op_type == "Or":
        return [_emit(ctx, node, "where", [a, ctx.b.constant(np.array(True), "true"), b])]
    return [_emit(ctx, node, "equal", [ctx.b.emit1("equal", [a, b]), ctx.b.constant(np.array(False), "false")])]


@handles("LessOrEqual", "GreaterOrEqual")
def _compare_or_equal(ctx, node, attrs):
    # a <= b as (a < b) or (a == b), not as not(a > b): a NaN compares false either way
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    strict = ctx.b.emit1("less" if node.op_type == "LessOrEqual" else "greater", [a, b])
    return [_emit(ctx, node, "where", [strict, ctx.b.constant(np.array(True), "true"), ctx.b.emit1("equal", [a, b])])]


@handles("Mod")
def _mod(ctx, node, attrs):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    return [_emit(ctx, node, "mod", [a, b], {"fmod": int(attrs.get("fmod", 0))})]


@handles("Tile")
def _tile(ctx, node, attrs):
    """x tiled r times along each axis: viewed as [1, s0, 1, s1, ...], expanded to [r0, s0, r1, s1, ...]."""
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    repeats = [int(r) for r in ctx.const(node, 1, "repeats").reshape(-1)]
    if len(repeats) != t.rank or any(r < 0 for r in repeats):
        raise ctx.fail(node, f"repeats {repeats} do not fit an input of rank {t.rank}")
    if all(r == 1 for r in repeats):
        return [x]
    spread = _reshape(ctx, x, [d for s in t.shape for d in (1, s)])
    grown = _emit(ctx, node, "expand", [spread], {"shape": tuple(d for r, s in zip(repeats, t.shape) for d in (r, s))})
    return [_reshape(ctx, grown, [r * s for r, s in zip(repeats, t.shape)])]


@handles("DepthToSpace", "SpaceToDepth")
def _depth_space(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    if t.rank != 4:
        raise ctx.fail(node, f"expects a 4-D input, got rank {t.rank}")
    n, c, h, w = t.shape
    b = int(attrs["blocksize"])
    if node.op_type == "SpaceToDepth":
        if h % b or w % b:
            raise ctx.fail(node, f"blocksize {b} does not divide {h}x{w}")
        # the inverse of DepthToSpace in the same mode (SpaceToDepth-28 added `mode`; before, DCR)
        perm = (0, 3, 5, 1, 2, 4) if attrs.get("mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
        y = ctx.b.emit1("transpose", [_reshape(ctx, x, (n, c, h // b, b, w // b, b))], {"perm": perm})
        return [_reshape(ctx, y, (n, c * b * b, h // b, w // b))]
    if c % (b * b):
        raise ctx.fail(node, f"blocksize {b} squared does not divide {c} channels")
    if attrs.get("mode", "DCR") == "DCR":
        y = ctx.b.emit1("transpose", [_reshape(ctx, x, (n, b, b, c // (b * b), h, w))], {"perm": (0, 3, 4, 1, 5, 2)})
    else:  # CRD
        y = ctx.b.emit1("transpose", [_reshape(ctx, x, (n, c // (b * b), b, b, h, w))], {"perm": (0, 1, 4, 2, 5, 3)})
    return [_reshape(ctx, y, (n, c // (b * b), h * b, w * b))]


@handles("InstanceNormalization")
def _instance_norm(ctx, node, attrs):
    """Each (sample, channel) normalized over its spatial positions: a layer norm of [N * C, spatial] rows, then the
    per-channel scale and bias."""
    x, scale, bias = (ctx.input(node, i) for i in range(3))
    t = ctx.b.type_of(x)
    n, c = t.shape[:2]
    d = int(np.prod(t.shape[2:]))
    ones = ctx.b.constant(np.ones(d, t.dtype), "ones")
    zeros = ctx.b.constant(np.zeros(d, t.dtype), "zeros")
    y = _emit(ctx, node, "layer_norm", [_reshape(ctx, x, (n * c, d)), ones, zeros],
              {"epsilon": float(attrs.get("epsilon", 1e-5))})
    per_channel = (c,) + (1,) * (t.rank - 2)
    y = ctx.b.emit1("mul", [_reshape(ctx, y, t.shape), _reshape(ctx, scale, per_channel)])
    return [ctx.b.emit1("add", [y, _reshape(ctx, bias, per_channel)], name=node.name or "instance_norm")]


@handles("EyeLike")
def _eye_like(ctx, node, attrs):
    t = ctx.type_of(node, 0)
    if t.rank != 2:
        raise ctx.fail(node, f"expects a 2-D input, got rank {t.rank}")
    dtype = ONNX_DTYPES.get(attrs["dtype"]) if "dtype" in attrs else t.dtype
    if dtype is None:
        raise ctx.fail(node, f"dtype {onnx.TensorProto.DataType.Name(attrs['dtype'])} is not supported")
    return [ctx.b.constant(np.eye(t.shape[0], t.shape[1], int(attrs.get("k", 0)), dtype=dtype), node.output[0])]


@handles("Trilu")
def _trilu(ctx, node, attrs):
    x = ctx.input(node, 0)
    t = ctx.b.type_of(x)
    k_value = ctx.const(node, 1, "k")
    k = 0 if k_value is None else int(np.asarray(k_value).reshape(-1)[0])
    rows, cols = t.shape[-2:]
    keep = np.triu(np.ones((rows, cols), bool), k) if attrs.get("upper", 1) else np.tril(np.ones((rows, cols), bool), k)
    return [_emit(ctx, node, "where", [ctx.b.constant(keep, "mask"), x, _scalar(ctx, x, 0)])]
