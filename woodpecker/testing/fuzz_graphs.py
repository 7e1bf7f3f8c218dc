"""Seeded random ONNX graphs for differential fuzzing (woodpecker.testing.fuzz compares them with onnxruntime).

`generate(seed)` builds a valid model of a few to ~15 nodes and inputs for it, the same for the same seed:

    elementwise chains with broadcasting (a constant or another value of a broadcastable shape)
    anchors: Conv (groups, strides, dilations, asymmetric pads), Max/AveragePool (ceil_mode, count_include_pad),
             global pooling, MatMul (constant weight, or two activations), Gemm, BatchNormalization
    data movement: Concat, Slice (negative steps), Transpose, Reshape, Flatten, Squeeze/Unsqueeze, Split, Pad, Expand,
             Gather with run-time indices
    reductions over random axes; Softmax/LogSoftmax on any axis; LayerNormalization
    integer arithmetic on an int64 input; comparisons of exact values feeding Where (bool outputs)
    multi-node blocks (woodpecker.testing.fuzz_blocks, passed in by woodpecker.testing.fuzz.generate): attention,
             squeeze-excite, DenseNet- and Inception-like concatenations, Shape -> int64 arithmetic -> Reshape/Expand

Sizes are drawn from primes, ones and powers of two. The generator prefers the newest value (chains that fuse) but
also reuses older ones, which gives values with several consumers, diamonds that meet again, and graph outputs
taken from the middle of a chain: the fusion-hostile patterns. Values that are compared exactly or that feed a
discontinuous op (comparisons) come only from exact computations, so rounding differences never flip them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what the pinned onnxruntime reads
SIZES = (1, 1, 2, 3, 4, 5, 7, 8, 11, 13, 16)  # ones, primes, powers of two
MAX_ELEMENTS = 4096  # per tensor: keeps a graph's compile and run fast

_ONNX_TYPE = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "int64": TensorProto.INT64,
              "bool": TensorProto.BOOL}


@dataclasses.dataclass(frozen=True)
class FuzzCase:
    seed: int
    model: onnx.ModelProto
    inputs: Mapping[str, np.ndarray]

    @property
    def ops(self) -> list[str]:
        return [n.op_type for n in self.model.graph.node]


@dataclasses.dataclass
class _Value:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"  # "float32" stands for the graph's float type (float32, or float64: _Builder.ftype)
    exact: bool = False  # computed exactly (inputs, data movement, integer ops): safe to compare or to output

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)


class _Builder:
    def __init__(self, rng: np.random.Generator, ftype: str = "float32") -> None:
        self.rng = rng
        self.ftype = ftype  # the float type of the whole graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[_Value] = []
        self.values: list[_Value] = []  # float activations, newest last
        self.ints: list[_Value] = []  # int64 values
        self.bools: list[_Value] = []
        self.index_bound: int | None = None  # run-time indices must be below every table size they index
        self._n = 0

    # -- naming and constants ------------------------------------------------------------------------------------
    def uid(self, base: str) -> str:
        self._n += 1
        return f"{base}{self._n}"

    def const(self, value: np.ndarray, base: str = "c") -> str:
        name = self.uid(base)
        value = np.asarray(value)
        if value.dtype == np.float32:
            value = value.astype(self.ftype)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, shape: Sequence[int], fan_in: int) -> str:
        std = 1.0 / math.sqrt(max(fan_in, 1))  # keeps activations O(1) through a chain
        return self.const(self.rng.normal(0.0, std, tuple(shape)).astype(np.float32), "w")

    def node(self, op: str, inputs: Sequence[str], shape: Sequence[int], dtype: str = "float32",
             exact: bool = False, **attrs) -> _Value:
        out = _Value(self.uid(op.lower() + "_"), tuple(int(d) for d in shape), dtype, exact)
        self.nodes.append(helper.make_node(op, list(inputs), [out.name], name=self.uid(op), **attrs))
        {"float32": self.values, "int64": self.ints, "bool": self.bools}[dtype].append(out)
        return out

    # -- choosing operands -----------------------------------------------------------------------------------------
    def pick(self, values: Sequence[_Value], where: Callable[[_Value], bool] = lambda v: True) -> _Value | None:
        ok = [v for v in values if where(v)]
        if not ok:
            return None
        if self.rng.random() < 0.5:
            return ok[-1]  # the newest: chains, which fuse
        return ok[int(self.rng.integers(len(ok)))]  # an older one: several consumers, diamonds

    def shape(self, rank: int) -> tuple[int, ...]:
        while True:
            s = tuple(int(self.rng.choice(SIZES)) for _ in range(rank))
            if math.prod(s) <= MAX_ELEMENTS // 4:
                return s


def _bcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------------------------
# operator generators: each returns the value it made, or None when the graph offers no operand it can take

_UNARY = ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Softplus", "Erf", "HardSwish", "Sin", "Cos", "Softsign", "Selu",
          "Celu")


def _unary(b: _Builder) -> _Value | None:
    x = b.pick(b.values)
    if x is None:
        return None
    r = b.rng
    kinds = _UNARY + ("LeakyRelu", "Elu", "HardSigmoid", "Clip", "Exp", "Sqrt", "Log", "Reciprocal", "PRelu", "Pow")
    if b.ftype == "float64":  # onnxruntime implements these for double
        kinds = ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Sin", "Cos", "LeakyRelu", "Clip", "Exp", "Sqrt", "Log",
                 "Reciprocal", "PRelu", "Pow")
    kind = str(r.choice(kinds))
    if kind == "PRelu":  # a slope that broadcasts unidirectionally onto x
        shape = tuple(1 if r.random() < 0.6 else d for d in x.shape[int(r.integers(0, x.rank + 1)):])
        return b.node(kind, [x.name, b.const(r.uniform(0.05, 0.5, shape).astype(np.float32))], x.shape)
    if kind == "Pow":  # (|x| + 0.5) ** e
        a = b.node("Add", [b.node("Abs", [x.name], x.shape).name, b.const(np.float32(0.5))], x.shape)
        return b.node(kind, [a.name, b.const(np.float32(r.choice([2.0, 0.5, 3.0, -1.0, 1.5])))], x.shape)
    if kind == "LeakyRelu":
        return b.node(kind, [x.name], x.shape, alpha=float(r.choice([0.01, 0.2, 1.5])))
    if kind == "Elu":
        return b.node(kind, [x.name], x.shape, alpha=float(r.choice([1.0, 0.5])))
    if kind == "HardSigmoid":
        return b.node(kind, [x.name], x.shape, alpha=float(r.choice([0.2, 0.5])), beta=float(r.choice([0.5, 0.1])))
    if kind == "Clip":
        lo, hi = sorted(r.normal(0, 1, 2).astype(np.float32).tolist())
        inputs = [x.name, b.const(np.float32(lo)) if r.random() < 0.8 else "", b.const(np.float32(hi))]
        return b.node(kind, inputs, x.shape)
    if kind == "Exp":  # keep exp in float32 range: clip first
        c = b.node("Clip", [x.name, b.const(np.float32(-6)), b.const(np.float32(6))], x.shape)
        return b.node(kind, [c.name], x.shape)
    if kind in ("Sqrt", "Log", "Reciprocal"):  # on |x| + 1 (or |x| for sqrt): defined everywhere
        a = b.node("Abs", [x.name], x.shape)
        if kind != "Sqrt":
            a = b.node("Add", [a.name, b.const(np.float32(1.0))], x.shape)
        return b.node(kind, [a.name], x.shape)
    return b.node(kind, [x.name], x.shape, exact=kind in ("Relu", "Abs", "Neg") and x.exact)


def _broadcast_partner(b: _Builder, x: _Value) -> tuple[_Value, tuple[int, ...]]:
    """A second operand for x (another value whose shape broadcasts with x's, or a constant that does) and the
    shape of the broadcast result."""
    r = b.rng
    if r.random() < 0.1:
        return x, x.shape  # the same value twice: Add(x, x)
    if r.random() < 0.4:
        other = b.pick(b.values, lambda v: v is not x and (s := _bcast(v.shape, x.shape)) is not None
                       and math.prod(s) <= MAX_ELEMENTS)
        if other is not None:
            return other, _bcast(other.shape, x.shape)  # type: ignore[return-value]
    choice = r.random()
    if choice < 0.25 or not x.shape:
        shape: tuple[int, ...] = ()
    elif choice < 0.5:
        shape = x.shape[int(r.integers(len(x.shape))):]  # a suffix: numpy aligns on the right
    else:
        shape = tuple(1 if r.random() < 0.5 else d for d in x.shape)
    value = r.normal(0, 1, shape).astype(np.float32)
    return _Value(b.const(value), shape, "float32", True), x.shape


def _binary(b: _Builder) -> _Value | None:
    x = b.pick(b.values)
    if x is None:
        return None
    r = b.rng
    op = str(r.choice(["Add", "Sub", "Mul", "Max", "Min", "Div"]))
    y, shape = _broadcast_partner(b, x)
    if op == "Div":  # divide by |y| + 0.5
        a = b.node("Abs", [y.name], y.shape)
        y = b.node("Add", [a.name, b.const(np.float32(0.5))], y.shape)
    # Div keeps its divisor |y| + 0.5: an activation as divisor can be exactly 0 (x - x, a product with 0), and
    # the sign of such a zero, so the quotient's infinity, is implementation-defined (onnxruntime's MatMul sums
    # from +0 where a one-term product keeps -0), or tiny, which amplifies rounding: not a test of woodpecker
    swap = r.random() >= 0.7 and op != "Div"
    inputs = [y.name, x.name] if swap else [x.name, y.name]
    return b.node(op, inputs, shape, exact=op in ("Max", "Min") and x.exact and y.exact)


def _conv(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank == 4 and v.shape[1] <= 16 and min(v.shape[2:]) >= 2)
    if x is None:
        return None
    r = b.rng
    n, c, h, w = x.shape
    groups = int(r.choice([g for g in (1, 1, 2, 3, 4, c) if c % g == 0]))
    k_out = groups * int(r.choice([1, 2, 3, 5] if groups > 1 else [1, 3, 4, 7, 8, 16, 32]))
    kh, kw = int(r.choice([1, 2, 3, 5])), int(r.choice([1, 3]))
    sh, sw = int(r.choice([1, 1, 2])), int(r.choice([1, 2]))
    dh, dw = (int(r.choice([1, 2, 3])), int(r.choice([1, 2]))) if r.random() < 0.3 else (1, 1)  # dilated
    pads = [int(r.integers(0, k // 2 + 1)) for k in (kh, kw)] + [int(r.integers(0, k // 2 + 1)) for k in (kh, kw)]
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1 or n * k_out * oh * ow > MAX_ELEMENTS:
        return None
    inputs = [x.name, b.weight((k_out, c // groups, kh, kw), c // groups * kh * kw)]
    if r.random() < 0.6:
        inputs.append(b.const(r.normal(0, 0.1, k_out).astype(np.float32), "bias"))
    y = b.node("Conv", inputs, (n, k_out, oh, ow), kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
               pads=pads, group=groups)
    if r.random() < 0.3:  # a BatchNormalization to fold
        params = [b.const(r.uniform(0.5, 1.5, k_out).astype(np.float32)), b.const(r.normal(0, 0.1, k_out).astype(np.float32)),
                  b.const(r.normal(0, 0.1, k_out).astype(np.float32)), b.const(r.uniform(0.5, 1.5, k_out).astype(np.float32))]
        y = b.node("BatchNormalization", [y.name, *params], y.shape, epsilon=1e-5)
    if r.random() < 0.4:  # the ResNet epilogue: activation, then maybe a residual add of a value of the same shape
        y = b.node(str(r.choice(["Relu", "Relu", "Sigmoid", "LeakyRelu"])), [y.name], y.shape)  # (float32 only)
        residual = b.pick(b.values, lambda v: v.shape == y.shape and v is not y)
        if residual is not None and r.random() < 0.6:
            y = b.node("Add", [residual.name, y.name], y.shape)
    return y


def _pool_out(size: int, k: int, s: int, p0: int, p1: int, ceil_mode: bool) -> int | None:
    span = size + p0 + p1 - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p0:
        # onnxruntime drops a last window that would start in the end padding; ONNX's shape inference keeps it:
        # a model the two disagree on is not a test of woodpecker
        return None
    return out


def _pool(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank == 4 and min(v.shape[2:]) >= 2)
    if x is None:
        return None
    r = b.rng
    n, c, h, w = x.shape
    if r.random() < 0.25:
        op = str(r.choice(["GlobalAveragePool", "GlobalMaxPool"]))
        return b.node(op, [x.name], (n, c, 1, 1), exact=op == "GlobalMaxPool" and x.exact)
    op = str(r.choice(["MaxPool", "AveragePool"]))
    k = [int(r.choice([2, 3])) for _ in range(2)]
    k = [min(kk, d) for kk, d in zip(k, (h, w))]
    s = [int(r.choice([1, 2])) for _ in range(2)]
    pads = [int(r.integers(0, kk)) if r.random() < 0.5 else 0 for kk in k] * 2
    pads = [min(p, kk - 1) for p, kk in zip(pads, k + k)]
    ceil_mode = int(r.random() < 0.3)
    oh = _pool_out(h, k[0], s[0], pads[0], pads[2], bool(ceil_mode))
    ow = _pool_out(w, k[1], s[1], pads[1], pads[3], bool(ceil_mode))
    if oh is None or ow is None or oh < 1 or ow < 1:
        return None
    attrs = dict(kernel_shape=k, strides=s, pads=pads, ceil_mode=ceil_mode)
    if op == "AveragePool":
        attrs["count_include_pad"] = int(r.random() < 0.5)
    return b.node(op, [x.name], (n, c, oh, ow), exact=op == "MaxPool" and x.exact, **attrs)


def _matmul(b: _Builder) -> _Value | None:
    r = b.rng
    vec = b.pick(b.values, lambda v: v.rank == 1)
    if vec is not None and r.random() < 0.3:  # a vector on either side: numpy's matmul promotes and drops the 1
        n = int(r.choice([1, 3, 16]))
        if r.random() < 0.5:
            return b.node("MatMul", [vec.name, b.weight((vec.shape[0], n), vec.shape[0])], (n,))
        return b.node("MatMul", [b.weight((n, vec.shape[0]), vec.shape[0]), vec.name], (n,))
    x = b.pick(b.values, lambda v: v.rank >= 2)
    if x is None:
        return None
    k = x.shape[-1]
    if x.rank == 2 and r.random() < 0.3:  # Gemm
        m = x.shape[0]
        trans_a, trans_b = int(r.random() < 0.3), int(r.random() < 0.5)
        if trans_a:  # Gemm(A^T): A is [K, M]
            m, k = x.shape[1], x.shape[0]
        n = int(r.choice([1, 3, 8, 13]))
        w = b.weight((n, k) if trans_b else (k, n), k)
        inputs = [x.name, w]
        if r.random() < 0.7:
            c_shape = [(n,), (1, n), (m, n), (), (m, 1)][int(r.integers(5))]
            inputs.append(b.const(r.normal(0, 0.1, c_shape).astype(np.float32)))
        return b.node("Gemm", inputs, (m, n), transA=trans_a, transB=trans_b,
                      alpha=float(r.choice([1.0, 0.5])), beta=float(r.choice([1.0, 2.0])))
    other = b.pick(b.values, lambda v: v.rank >= 2 and v.shape[-2] == k and v is not x and
                   _bcast(v.shape[:-2], x.shape[:-2]) is not None)
    if other is not None and r.random() < 0.5:  # two activations: a batched matmul
        batch = _bcast(other.shape[:-2], x.shape[:-2])
        out = (*batch, x.shape[-2], other.shape[-1])  # type: ignore[misc]
        if math.prod(out) > MAX_ELEMENTS:
            return None
        return b.node("MatMul", [x.name, other.name], out)
    n = int(r.choice([1, 2, 5, 8, 16, 17, 32, 48]))
    out = (*x.shape[:-1], n)
    if math.prod(out) > MAX_ELEMENTS:
        return None
    return b.node("MatMul", [x.name, b.weight((k, n), k)], out)


def _transpose(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 2)
    if x is None:
        return None
    perm = [int(p) for p in b.rng.permutation(x.rank)]
    return b.node("Transpose", [x.name], tuple(x.shape[p] for p in perm), exact=x.exact, perm=perm)


def _reshape(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1)
    if x is None:
        return None
    r = b.rng
    choice = r.random()
    if choice < 0.3 and x.rank >= 2:
        axis = int(r.integers(0, x.rank + 1))
        shape = (math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
        return b.node("Flatten", [x.name], shape, exact=x.exact, axis=axis)
    if choice < 0.5:  # drop the 1s, or add one
        if 1 in x.shape and r.random() < 0.6:
            axes = [i for i, d in enumerate(x.shape) if d == 1]
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
            return b.node("Squeeze", [x.name, b.const(np.array(axes, np.int64))], shape, exact=x.exact)
        if x.rank < 5:
            axis = int(r.integers(0, x.rank + 1))
            shape = x.shape[:axis] + (1,) + x.shape[axis:]
            return b.node("Unsqueeze", [x.name, b.const(np.array([axis], np.int64))], shape, exact=x.exact)
    # merge two adjacent dimensions or split one into factors; 0 and -1 in the target sometimes
    shape = list(x.shape)
    if len(shape) >= 2 and r.random() < 0.5:
        i = int(r.integers(0, len(shape) - 1))
        shape[i : i + 2] = [shape[i] * shape[i + 1]]
    else:
        i = int(r.integers(0, len(shape)))
        factors = [f for f in range(2, shape[i]) if shape[i] % f == 0]
        if not factors or len(shape) >= 5:
            return None
        f = int(r.choice(factors))
        shape[i : i + 1] = [f, shape[i] // f]
    target = list(shape)
    if r.random() < 0.3:
        target[int(r.integers(len(target)))] = -1
    elif r.random() < 0.3 and target[0] == x.shape[0]:
        target[0] = 0  # 0 copies the input's dimension
    return b.node("Reshape", [x.name, b.const(np.array(target, np.int64))], shape, exact=x.exact)


def _slice(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1 and max(v.shape) >= 2)
    if x is None:
        return None
    r = b.rng
    axes = sorted({int(a) for a in r.choice(x.rank, size=int(r.integers(1, x.rank + 1)))})
    starts, ends, steps, shape = [], [], [], list(x.shape)
    for a in axes:
        d = x.shape[a]
        step = int(r.choice([1, 1, 2, -1, -2, 3]))
        if step > 0:
            s, e = int(r.integers(-d, d)), int(r.choice([d, d + 5, 2**62, int(r.integers(-d, d + 1))]))
        else:
            s, e = int(r.choice([d - 1, -1, 2**62, int(r.integers(-d, d))])), int(r.choice([-d - 1, -(2**62), int(r.integers(-d, d))]))
        n = len(range(d)[slice(s, e, step)])
        if n == 0:
            s, e, step, n = 0, d, 1, d
        starts.append(s)
        ends.append(e)
        steps.append(step)
        shape[a] = n
    if r.random() < 0.3:
        axes = [a - x.rank for a in axes]  # negative axes
    inputs = [x.name, b.const(np.array(starts, np.int64)), b.const(np.array(ends, np.int64)),
              b.const(np.array(axes, np.int64)), b.const(np.array(steps, np.int64))]
    return b.node("Slice", inputs, shape, exact=x.exact)


def _concat(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1)
    if x is None:
        return None
    r = b.rng
    axis = int(r.integers(0, x.rank))
    partners = [v for v in b.values if v.rank == x.rank and
                all(d == e for i, (d, e) in enumerate(zip(v.shape, x.shape)) if i != axis)]
    chosen = [x] + [partners[int(i)] for i in r.integers(0, len(partners), size=int(r.integers(1, 3)))]
    size = sum(v.shape[axis] for v in chosen)
    shape = x.shape[:axis] + (size,) + x.shape[axis + 1 :]
    if math.prod(shape) > MAX_ELEMENTS:
        return None
    r.shuffle(chosen)
    return b.node("Concat", [v.name for v in chosen], shape, exact=all(v.exact for v in chosen),
                  axis=axis - x.rank if r.random() < 0.3 else axis)


def _split(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1 and max(v.shape) >= 2)
    if x is None:
        return None
    r = b.rng
    axis = int(r.choice([i for i, d in enumerate(x.shape) if d >= 2]))
    d = x.shape[axis]
    cut = sorted({int(c) for c in r.integers(1, d, size=int(r.integers(1, min(3, d))))})
    sizes = [e - s for s, e in zip([0] + cut, cut + [d])]
    outs = []
    for size in sizes:
        outs.append(_Value(b.uid("split_"), x.shape[:axis] + (size,) + x.shape[axis + 1 :], "float32", x.exact))
    b.nodes.append(helper.make_node("Split", [x.name, b.const(np.array(sizes, np.int64))], [o.name for o in outs],
                                    name=b.uid("Split"), axis=axis))
    order = list(outs)
    r.shuffle(order)
    b.values.extend(order)
    return order[-1]


def _pad(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1)
    if x is None:
        return None
    r = b.rng
    mode = str(r.choice(["constant", "constant", "reflect", "edge"]))
    pads = []
    for _ in range(2):
        for d in x.shape:
            limit = d - 1 if mode == "reflect" else 2
            pads.append(int(r.integers(0, min(limit, 2) + 1)) if r.random() < 0.5 else 0)
    shape = tuple(d + pads[i] + pads[i + x.rank] for i, d in enumerate(x.shape))
    if math.prod(shape) > MAX_ELEMENTS:
        return None
    inputs = [x.name, b.const(np.array(pads, np.int64))]
    if mode == "constant" and r.random() < 0.5:
        inputs.append(b.const(np.float32(r.normal())))
    return b.node("Pad", inputs, shape, exact=x.exact, mode=mode)


def _expand(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: 1 in v.shape or v.rank < 3)
    if x is None:
        return None
    r = b.rng
    target = [int(r.choice([2, 3, 5])) if d == 1 and r.random() < 0.7 else d for d in x.shape]
    if x.rank < 3 and r.random() < 0.5:
        target = [int(r.choice([1, 2, 3]))] + target
    shape = _bcast(x.shape, target)
    if shape is None or math.prod(shape) > MAX_ELEMENTS:
        return None
    return b.node("Expand", [x.name, b.const(np.array(target, np.int64))], shape, exact=x.exact)


def _gather(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1)
    idx = b.pick(b.inputs, lambda v: v.dtype == "int64" and v.name.startswith("idx"))
    if x is None or idx is None:
        return None
    axis = int(b.rng.integers(0, x.rank))
    b.index_bound = min(b.index_bound or x.shape[axis], x.shape[axis])
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1 :]
    if math.prod(shape) > MAX_ELEMENTS:
        return None
    return b.node("Gather", [x.name, idx.name], shape, exact=x.exact, axis=axis)


def _reduce(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1)
    if x is None:
        return None
    r = b.rng
    op = str(r.choice(["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare"]))
    axes = sorted({int(a) for a in r.choice(x.rank, size=int(r.integers(1, x.rank + 1)))})
    if r.random() < 0.15:
        axes = list(range(x.rank))  # everything: a scalar (rank 0 without keepdims) for what follows
    keepdims = int(r.random() < 0.5)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keepdims else \
        tuple(d for i, d in enumerate(x.shape) if i not in axes)
    named = [a - x.rank if r.random() < 0.3 else a for a in axes]
    exact = op in ("ReduceMax", "ReduceMin") and x.exact
    if op == "ReduceSum":  # axes is an input from opset 13
        return b.node(op, [x.name, b.const(np.array(named, np.int64))], shape, keepdims=keepdims)
    return b.node(op, [x.name], shape, exact=exact, axes=named, keepdims=keepdims)


def _normalize(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank >= 1)
    if x is None:
        return None
    r = b.rng
    choice = r.random()
    if choice < 0.6:
        op = "Softmax" if r.random() < 0.7 else "LogSoftmax"
        axis = int(r.integers(-x.rank, x.rank))
        return b.node(op, [x.name], x.shape, axis=axis)
    axis = int(r.integers(-x.rank, x.rank))
    tail = x.shape[axis:] if axis >= 0 else x.shape[x.rank + axis :]
    inputs = [x.name, b.const(r.uniform(0.5, 1.5, tail).astype(np.float32))]
    if r.random() < 0.7:
        inputs.append(b.const(r.normal(0, 0.1, tail).astype(np.float32)))
    return b.node("LayerNormalization", inputs, x.shape, axis=axis, epsilon=float(r.choice([1e-5, 1e-3])))


def _compare(b: _Builder) -> _Value | None:
    """A comparison of exact values (so rounding never flips it) selecting between two values."""
    x = b.pick(b.values, lambda v: v.exact)
    if x is None:
        return None
    r = b.rng
    op = str(r.choice(["Greater", "Less", "Equal"]))
    threshold = b.const(np.float32(0.0 if op == "Equal" else r.normal(0, 0.5)))
    cond = b.node(op, [x.name, threshold], x.shape, dtype="bool", exact=True)
    if r.random() < 0.3:
        cond = b.node("Not", [cond.name], x.shape, dtype="bool", exact=True)
    other, shape = _broadcast_partner(b, x)
    return b.node("Where", [cond.name, x.name, other.name], shape, exact=x.exact and other.exact)


def _integer(b: _Builder) -> _Value | None:
    """Integer arithmetic on the int64 input (compared exactly), or its cast into the float chain."""
    x = b.pick(b.ints)
    if x is None:
        return None
    r = b.rng
    choice = r.random()
    if choice < 0.3:
        return b.node("Cast", [x.name], x.shape, to=_ONNX_TYPE[b.ftype], exact=True)
    if choice < 0.45:
        axes = [int(r.integers(0, x.rank))] if x.rank else []
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return b.node("ReduceSum", [x.name, b.const(np.array(axes, np.int64))], shape, dtype="int64", exact=True,
                      keepdims=0)
    op = str(r.choice(["Add", "Sub", "Mul", "Max", "Min", "Div"]))
    other = b.pick(b.ints, lambda v: _bcast(v.shape, x.shape) is not None) if r.random() < 0.5 else None
    if other is not None and op != "Div":
        return b.node(op, [x.name, other.name], _bcast(x.shape, other.shape), dtype="int64", exact=True)
    value = int(r.integers(1, 5)) * (1 if op == "Div" or r.random() < 0.7 else -1)  # never divide by 0
    return b.node(op, [x.name, b.const(np.int64(value))], x.shape, dtype="int64", exact=True)


def _folded(b: _Builder) -> _Value | None:
    """Values known at compile time (a shape, a constant) or a value passed through: outputs that the compiler
    must materialize in their own buffers."""
    x = b.pick(b.values)
    if x is None:
        return None
    r = b.rng
    choice = r.random()
    if choice < 0.4:
        return b.node("Shape", [x.name], (x.rank,), dtype="int64", exact=True)
    if choice < 0.6:
        shape = b.node("Shape", [x.name], (x.rank,), dtype="int64", exact=True)
        value = numpy_helper.from_array(np.array([r.normal()], b.ftype), "value")
        return b.node("ConstantOfShape", [shape.name], x.shape, exact=True, value=value)
    return b.node("Identity", [x.name], x.shape, exact=x.exact)


_GENERATORS: tuple[tuple[Callable[[_Builder], _Value | None], float], ...] = (
    (_unary, 3.0), (_binary, 3.0), (_conv, 2.5), (_pool, 2.0), (_matmul, 1.5), (_transpose, 1.0),
    (_reshape, 1.0), (_slice, 1.0), (_concat, 1.0), (_split, 0.5), (_pad, 0.7), (_expand, 0.5),
    (_gather, 0.5), (_reduce, 1.0), (_normalize, 1.0), (_compare, 0.7), (_integer, 0.8), (_folded, 0.4),
)


# ----------------------------------------------------------------------------------------------------------------
# generation


def generate(seed: int, max_nodes: int = 15,
             blocks: Sequence[tuple[Callable[[_Builder], _Value | None], float]] = ()) -> FuzzCase:
    """A valid ONNX model of 3 to `max_nodes` generated nodes (a few helper nodes come with some), with inputs.
    `blocks` are more generators with their weights (woodpecker.testing.fuzz passes fuzz_blocks.BLOCKS)."""
    r = np.random.default_rng(seed)
    b = _Builder(r, "float64" if r.random() < 0.15 else "float32")
    # one image-like input (rank 4) or a sequence-like one, sometimes a second float input; sometimes integers
    rank = int(r.choice([4, 4, 3, 2, 1]))
    if rank == 4 and r.random() < 0.7:  # image-like: a batch of 1 or 2, channels, and room for a window
        shape = (int(r.choice([1, 1, 2])), int(r.choice([1, 3, 4, 8, 16])), int(r.integers(3, 17)), int(r.integers(3, 17)))
    else:
        shape = b.shape(rank)
    b.inputs.append(_Value("x", shape, "float32", True))
    if r.random() < 0.4:
        b.inputs.append(_Value("y", b.shape(int(r.choice([1, 2, 3, 4]))), "float32", True))
    if r.random() < 0.3:
        b.inputs.append(_Value("n", b.shape(int(r.choice([1, 2]))), "int64", True))
    if r.random() < 0.25:
        b.inputs.append(_Value("idx", tuple(int(d) for d in r.choice([1, 2, 3], size=int(r.integers(1, 3)))), "int64", True))
    for v in b.inputs:
        if v.dtype == "float32":
            b.values.append(v)
        elif v.name == "n":
            b.ints.append(v)
    target = int(r.integers(3, max(3, max_nodes) + 1))
    # onnxruntime has no double kernels for convolution and pooling
    generators = _GENERATORS + tuple(blocks)
    weights = np.array([0.0 if b.ftype == "float64" and gen in (_conv, _pool) else w for gen, w in generators])
    attempts = 0
    while len(b.nodes) < target and attempts < 20 * target:
        attempts += 1
        gen = generators[int(r.choice(len(generators), p=weights / weights.sum()))][0]
        gen(b)
    return _finish(b, seed)


def _finish(b: _Builder, seed: int) -> FuzzCase:
    r = b.rng
    produced = [v for v in b.values + b.ints + b.bools if v not in b.inputs]
    if not produced:  # nothing applied (cannot happen with a float input, but be safe)
        produced = [b.node("Relu", ["x"], b.inputs[0].shape)]
    # the newest value, plus up to two from the middle of the chain (values that also feed later nodes)
    outputs = [produced[-1]]
    for v in r.permutation(len(produced))[: int(r.integers(0, 3))]:
        if produced[int(v)] not in outputs:
            outputs.append(produced[int(v)])
    # a bool or int output is compared exactly: it must come from exact computations only
    outputs = [v for v in outputs if v.dtype == "float32" or v.exact] or [produced[-1]]
    inputs: dict[str, np.ndarray] = {}
    for v in b.inputs:
        if v.dtype == "float32":
            inputs[v.name] = r.standard_normal(v.shape).astype(b.ftype)
        elif v.name == "idx":
            bound = b.index_bound or 1
            inputs[v.name] = r.integers(-bound, bound, v.shape).astype(np.int64)
        else:
            inputs[v.name] = r.integers(-20, 20, v.shape).astype(np.int64)
    def declared(v: _Value) -> onnx.ValueInfoProto:
        dtype = b.ftype if v.dtype == "float32" else v.dtype
        return helper.make_tensor_value_info(v.name, _ONNX_TYPE[dtype], list(v.shape))

    graph = helper.make_graph(b.nodes, f"fuzz_{seed}", [declared(v) for v in b.inputs], [declared(v) for v in outputs],
                              initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="woodpecker-fuzz")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)  # the declared shapes agree with ONNX's inference
    return FuzzCase(seed, model, inputs)
