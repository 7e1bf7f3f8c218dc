"""One fused group of graph nodes -> one concrete DSL kernel.

The anchor (convolution, dense, pooling, ...) is instantiated from its template in the operator library; the
elementwise and injective members are composed as expressions over the group's output indices and written as a
single epilogue statement, e.g. `Y[n < 1, k < 64, y < 56, x < 56] = relu(Conv[n, k, y, x] + B[k])`.
Scalar constants become literals; other constants become parameters with their unit dimensions dropped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from woodpecker.dsl import ast
from woodpecker.dsl.library import Library
from woodpecker.dsl.narrow import builtin_name
from woodpecker.dsl.transform import axis_ranges, instantiate, simplify
from woodpecker.errors import UnsupportedOpError
from woodpecker.ir import ops, winograd
from woodpecker.ir.graph import Node, TensorType
from woodpecker.lowering.reindex import reindex

Index = list[ast.Expr]


@dataclasses.dataclass
class _Lazy:
    """A value inside the group: its graph shape and its element at given graph indices."""

    shape: tuple[int, ...]
    dtype: str
    at: Callable[[Index], ast.Expr]


_AXIS_NAMES = {1: ("i",), 2: ("i", "j"), 3: ("i", "j", "k"), 4: ("n", "c", "h", "w"), 5: ("n", "c", "h", "w", "b")}
# Name of the anchor's result when an epilogue follows it (the epilogue statement is the kernel output Y).
_ANCHOR_RESULT = {
    "conv2d": "Conv", "conv2d_nchwc": "Conv", "conv2d_winograd_nchwc": "Conv", "depthwise_conv2d_nchwc": "Conv",
    "dense": "Dense",
    "dense_packed": "Dense", "batch_matmul": "Mm", "max_pool2d": "Pool", "avg_pool2d": "Pool",
    "global_avg_pool": "Pool", "global_max_pool": "Pool", "softmax": "Soft", "log_softmax": "Soft",
    "layer_norm": "Norm", "lrn": "Norm", "reduce": "Red",
}


# Elements per vector of a row reduction's partials in softmax_rows: a multiple of every host's float32 lanes
# (16 on AVX-512, 8 on AVX2, 4 on NEON), so the leading part splits evenly on each.
ROW_VECTOR = 16


def axis_names(rank: int) -> tuple[str, ...]:
    return _AXIS_NAMES.get(rank, tuple(f"i{d}" for d in range(rank)))


def float_literal(value: float) -> ast.FloatLit:
    # Shortest decimal that reads back as the same float32: `0.1`, not `0.10000000149011612`.
    return ast.FloatLit(float(str(np.float32(value))))


def scalar_literal(value: np.ndarray) -> ast.Expr:
    v = np.asarray(value).reshape(-1)[0]
    if v.dtype == np.bool_:
        return ast.BoolLit(bool(v))
    if v.dtype.kind in "iu":
        return ast.IntLit(int(v))
    if v.dtype == np.float64:
        return ast.FloatLit(float(v))  # every bit of a double (float_literal would round it to float32)
    return float_literal(float(v))


def _typed_literal(e: ast.Expr, dtype: str) -> ast.Expr:
    """A literal made explicitly of `dtype` (f64(0.5), i64(3)) where no tensor operand gives it its type: a
    literal alone is float32 or int32."""
    if isinstance(e, (ast.IntLit, ast.FloatLit)) and dtype in ast.DTYPE_NAMES and dtype not in ("float32", "int32"):
        return ast.Call(ast.DTYPE_NAMES[dtype], (e,))
    return e


class ProgramBuilder:
    def __init__(self, types: Mapping[str, TensorType], constants: Mapping[str, np.ndarray], library: Library):
        self.types = types
        self.constants = constants
        self.lib = library
        self.params: list[ast.TensorParam] = []
        self.param_values: list[str] = []
        self.body: list[ast.Compute] = []
        self.env: dict[str, _Lazy] = {}
        self.names: set[str] = set()
        self.family = "injective"
        self.attributes: tuple[ast.Attribute, ...] = ()
        # the anchor's result statement, its natural shape and its map from graph indices
        self.natural: tuple[str, tuple[int, ...], tuple[str, ...]] | None = None

    # -- names -------------------------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}{i}", i + 1
        self.names.add(name)
        return name

    # -- parameters --------------------------------------------------------------------------------------------
    def add_param(self, value: str, name: str, shape: Sequence[int], dtype: str) -> str:
        name = self.fresh(name)
        self.params.append(ast.TensorParam(name, dtype, tuple(ast.IntLit(int(d)) for d in shape)))
        self.param_values.append(value)
        return name

    def value(self, value: str, role: str) -> _Lazy:
        if value in self.env:
            return self.env[value]
        t = self.types[value]
        if value in self.constants and self.constants[value].size == 1:
            lit = scalar_literal(self.constants[value])
            lazy = _Lazy(t.shape, t.dtype, lambda idx, lit=lit: lit)
        elif value in self.constants:
            # Constants are passed with their unit dimensions dropped: a bias [1, 64, 1, 1] reads as B[k].
            kept = [d for d, n in enumerate(t.shape) if n != 1]
            name = self.add_param(value, role, [t.shape[d] for d in kept], t.dtype)
            lazy = _Lazy(t.shape, t.dtype, lambda idx, name=name, kept=kept: ast.Access(name, tuple(idx[d] for d in kept)))
        else:
            name = self.add_param(value, role, t.shape, t.dtype)
            lazy = _Lazy(t.shape, t.dtype, lambda idx, name=name: ast.Access(name, tuple(idx)))
        self.env[value] = lazy
        return lazy

    def tensor_arg(self, value: str, role: str, shape: Sequence[int]) -> str:
        """A parameter passed to an anchor template, viewed with the template's shape."""
        if value in self.env:
            raise UnsupportedOpError(f"value {value} feeds an anchor from inside its own fused group")
        t = self.types[value]
        if math.prod(shape) != t.size:
            raise AssertionError(f"view {list(shape)} of {value} {list(t.shape)} changes its size")
        return self.add_param(value, role, shape, t.dtype)

    # -- anchors -----------------------------------------------------------------------------------------------
    def anchor(self, node: Node, has_epilogue: bool) -> None:
        template, bindings, args, natural_shape = anchor_spec(node, self.types)
        kernel = self.lib.template(template)
        renames = {}
        for (tparam, value, shape) in args:
            renames[tparam] = self.tensor_arg(value, tparam, shape)
        for s in kernel.computes:
            if s.name == kernel.output:
                renames[s.name] = self.fresh(_ANCHOR_RESULT.get(node.op, "A") if has_epilogue else "Y")
            else:
                renames[s.name] = self.fresh(s.name)
        inst = instantiate(kernel, bindings, param_names=renames)
        self.body.extend(inst.computes)
        self.family = str(kernel.attribute("family", template))
        self.attributes = kernel.attributes
        out = inst.statement(inst.output)
        axes = tuple(a.name for a in out.axes)
        self.natural = (inst.output, tuple(natural_shape), axes)
        graph_shape = self.types[node.outputs[0]].shape

        def at(idx: Index, name=inst.output, nat=tuple(natural_shape), gshape=graph_shape) -> ast.Expr:
            return ast.Access(name, tuple(reindex(idx, gshape, nat)))

        self.env[node.outputs[0]] = _Lazy(graph_shape, self.types[node.outputs[0]].dtype, at)

    # -- elementwise and injective members ---------------------------------------------------------------------
    def role(self, value: str) -> str:
        # Parameter names a reader can follow: B for constants (bias, scale), R for a second activation
        # fused into an anchor's epilogue (a residual), X for the inputs of an elementwise chain.
        if value in self.constants:
            return "B"
        return "R" if self.natural is not None else "X"

    def member(self, node: Node) -> None:
        out_t = self.types[node.outputs[0]]
        kind = ops.get(node.op).kind
        if kind == "elementwise":
            inputs = [self.value(v, self.role(v)) for v in node.inputs]

            def at(idx: Index, inputs=inputs, node=node, shape=out_t.shape) -> ast.Expr:
                return elementwise_expr(node, [i.at(broadcast_index(idx, shape, i.shape)) for i in inputs], inputs)

            self.env[node.outputs[0]] = _Lazy(out_t.shape, out_t.dtype, at)
        elif kind == "injective":
            inputs = [self.value(v, self.role(v)) for v in node.inputs]
            self.env[node.outputs[0]] = _Lazy(out_t.shape, out_t.dtype, injective_map(node, inputs, self.types))
        elif kind == "view":  # a reshape inside a data-movement chain (woodpecker.passes.inline_injective)
            x = self.value(node.inputs[0], self.role(node.inputs[0]))
            self.env[node.outputs[0]] = _Lazy(
                out_t.shape, out_t.dtype, lambda idx, x=x, shape=out_t.shape: x.at(reindex(idx, shape, x.shape)))
        else:
            raise AssertionError(f"{node.op} cannot be a member of a fused group")

    # -- result ------------------------------------------------------------------------------------------------
    def finish(self, name: str, output: str) -> tuple[ast.Kernel, list[str], tuple[int, ...]]:
        lazy = self.env[output]
        t = self.types[output]
        if self.natural is not None:
            result, shape, axes = self.natural
            if result == "Y" and self.body[-1].name == "Y":
                kernel = ast.Kernel(name, tuple(self.params), "Y", tuple(self.body), (), self.attributes)
                return kernel, self.param_values + [output], shape
        else:
            shape, axes = t.shape, axis_names(t.rank)
            if not shape:  # a scalar result is computed as a one-element vector: a DSL statement needs an index
                shape, axes = (1,), ("i",)
        idx: Index = [ast.Var(a) for a in axes]
        graph_idx = reindex(idx, shape, t.shape)
        out_axes = tuple(ast.Axis(a, ast.IntLit(d)) for a, d in zip(axes, shape))
        value = _typed_value(simplify(lazy.at(graph_idx), axis_ranges(out_axes)), t.dtype)
        self.body.append(ast.Compute(self.fresh("Y"), out_axes, value))
        kernel = ast.Kernel(name, tuple(self.params), self.body[-1].name, tuple(self.body), (), self.attributes)
        return kernel, self.param_values + [output], tuple(shape)


def _typed_value(e: ast.Expr, dtype: str) -> ast.Expr:
    """The result's literals (the whole value, or IfElse branches) made of the output's dtype: a Pad that a Slice
    reads only in its padding simplifies to `Y = 0.0`, which alone would be a float32 result."""
    if isinstance(e, ast.IfElse):
        return dataclasses.replace(e, then=_typed_value(e.then, dtype), otherwise=_typed_value(e.otherwise, dtype))
    return _typed_literal(e, dtype)


def broadcast_index(idx: Index, out_shape: Sequence[int], in_shape: Sequence[int]) -> Index:
    """NumPy broadcasting: align right; an input dimension of 1 against a larger one reads index 0."""
    offset = len(out_shape) - len(in_shape)
    return [ast.IntLit(0) if d == 1 and out_shape[i + offset] != 1 else idx[i + offset] for i, d in enumerate(in_shape)]


# ----------------------------------------------------------------------------------------------------------------
# elementwise expressions

_UNARY_FN = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "exp": "exp", "log": "log", "sqrt": "sqrt",
             "reciprocal": "reciprocal", "abs": "abs", "floor": "floor", "ceil": "ceil", "erf": "erf",
             "softplus": "softplus", "hard_swish": "hard_swish", "round": "round", "isnan": "isnan", "isinf": "isinf",
             **{f: f for f in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")}}
_BIN_OP = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
_CMP_OP = {"equal": "==", "less": "<", "greater": ">"}


def elementwise_expr(node: Node, args: list[ast.Expr], inputs: Sequence[_Lazy]) -> ast.Expr:
    op, a = node.op, node.attrs
    x = args[0]
    if op in _UNARY_FN:
        return ast.Call(_UNARY_FN[op], (x,))
    if op == "identity":
        return x
    if op == "neg":
        return ast.Neg(x)
    if op == "clip":
        if a.get("min") is not None:
            x = ast.Call("max", (x, float_literal(a["min"])))
        if a.get("max") is not None:
            x = ast.Call("min", (x, float_literal(a["max"])))
        return x
    if op in ("leaky_relu", "elu"):
        return ast.Call(op, (x, float_literal(a.get("alpha", 0.01 if op == "leaky_relu" else 1.0))))
    if op == "hard_sigmoid":
        return ast.Call("hard_sigmoid", (x, float_literal(a.get("alpha", 0.2)), float_literal(a.get("beta", 0.5))))
    if op == "gelu":
        return ast.Call("gelu_tanh" if a.get("approximate", "none") == "tanh" else "gelu", (x,))
    if op == "cast":
        return ast.Call(ast.DTYPE_NAMES[a["to"]], (x,))
    if op == "to_format":
        return ast.Call(builtin_name(a["type"], a.get("saturate", True), a.get("round_mode", "up")), (x,))
    if op in _BIN_OP:
        if op == "div" and not inputs[0].dtype.startswith("float"):
            return _trunc_div(x, args[1])
        if op == "pow" and not inputs[0].dtype.startswith("float"):
            # ONNX Pow keeps the base's type; native pow is floating-point only: compute in f64 (exact for integer
            # results below 2**53) and truncate back, as a C cast does
            return ast.Call(ast.DTYPE_NAMES[inputs[0].dtype],
                            (ast.BinOp("**", ast.Call("f64", (x,)), ast.Call("f64", (args[1],))),))
        return ast.BinOp(_BIN_OP[op], x, args[1])
    if op in ("maximum", "minimum"):
        return ast.Call("max" if op == "maximum" else "min", (x, args[1]))
    if op == "mod":
        if inputs[0].dtype.startswith("float"):
            return ast.Call("fmod", (x, args[1])) if a.get("fmod", 0) else _floor_mod_float(x, args[1])
        return _int_mod(x, args[1], bool(a.get("fmod", 0)))
    if op in _CMP_OP:
        return ast.Compare((_CMP_OP[op],), (x, args[1]))
    if op == "where":  # Where(cond, 0.0, 1.0) of float64 constants: its branches alone say its dtype
        return ast.IfElse(x, _typed_literal(args[1], inputs[1].dtype), _typed_literal(args[2], inputs[2].dtype))
    raise UnsupportedOpError(f"elementwise op {op} has no DSL form")


def _trunc_div(a: ast.Expr, b: ast.Expr) -> ast.Expr:
    """ONNX integer Div truncates towards zero (-7 / 2 = -3); the DSL's `//` floors (-4). The two differ by one
    exactly when the division is inexact and the floored quotient is negative.

    A zero divisor is undefined in ONNX, but a native integer division by zero traps (SIGFPE) and takes the whole
    process down: divide by 1 instead and give 0, as numpy does."""
    zero = ast.Compare(("==",), (b, ast.IntLit(0)))
    b = ast.IfElse(zero, ast.IntLit(1), b)
    q = ast.BinOp("//", a, b)
    inexact = ast.Compare(("!=",), (ast.BinOp("%", a, b), ast.IntLit(0)))
    negative = ast.Compare(("<",), (q, ast.IntLit(0)))
    return ast.IfElse(zero, ast.IntLit(0),
                      ast.IfElse(ast.BoolOp("and", (inexact, negative)), ast.BinOp("+", q, ast.IntLit(1)), q))


def _int_mod(a: ast.Expr, b: ast.Expr, truncated: bool) -> ast.Expr:
    """Integer remainder: the divisor's sign (`%` floors), or with `truncated` the dividend's (C's %). A zero
    divisor gives 0 rather than trap (see _trunc_div)."""
    zero = ast.Compare(("==",), (b, ast.IntLit(0)))
    safe = ast.IfElse(zero, ast.IntLit(1), b)
    r = ast.BinOp("%", a, safe)
    if truncated:  # a floored remainder that is nonzero and of the other sign than a is off by b
        wrong_sign = ast.BoolOp("and", (ast.Compare(("!=",), (r, ast.IntLit(0))),
                                        ast.Compare(("!=",), (ast.Compare(("<",), (r, ast.IntLit(0))),
                                                              ast.Compare(("<",), (a, ast.IntLit(0)))))))
        r = ast.IfElse(wrong_sign, ast.BinOp("-", r, safe), r)
    return ast.IfElse(zero, ast.IntLit(0), r)


def _floor_mod_float(a: ast.Expr, b: ast.Expr) -> ast.Expr:
    """Python's % on floats: fmod, shifted by b when the signs differ."""
    r = ast.Call("fmod", (a, b))
    shift = ast.BoolOp("and", (ast.Compare(("!=",), (r, ast.FloatLit(0.0))),
                               ast.Compare(("!=",), (ast.Compare(("<",), (r, ast.FloatLit(0.0))),
                                                     ast.Compare(("<",), (b, ast.FloatLit(0.0)))))))
    return ast.IfElse(shift, ast.BinOp("+", r, b), r)


# ----------------------------------------------------------------------------------------------------------------
# injective index maps


def injective_map(node: Node, inputs: list[_Lazy], types: Mapping[str, TensorType]) -> Callable[[Index], ast.Expr]:
    op, a = node.op, node.attrs
    x = inputs[0]
    if op == "transpose":
        perm = a["perm"]

        def at(idx: Index) -> ast.Expr:
            src: Index = [ast.IntLit(0)] * len(perm)
            for d, p in enumerate(perm):
                src[p] = idx[d]
            return x.at(src)

        return at
    if op == "slice":
        starts, steps = a["starts"], a["steps"]
        return lambda idx: x.at([
            simplify(ast.BinOp("+", ast.IntLit(b), ast.BinOp("*", i, ast.IntLit(s)))) for i, b, s in zip(idx, starts, steps)
        ])
    if op == "concat":
        axis = a["axis"]
        offsets = np.cumsum([0] + [i.shape[axis] for i in inputs]).tolist()

        def at(idx: Index) -> ast.Expr:
            k = len(inputs) - 1
            expr = inputs[k].at(_shift(idx, axis, offsets[k]))
            for k in range(len(inputs) - 2, -1, -1):
                cond = ast.Compare(("<",), (idx[axis], ast.IntLit(offsets[k + 1])))
                expr = ast.IfElse(cond, inputs[k].at(_shift(idx, axis, offsets[k])), expr)
            return expr

        return at
    if op == "pad":
        return _pad_map(a, x)
    if op == "gather":
        axis = a["axis"]
        ind = inputs[1]
        dim = x.shape[axis]

        def at(idx: Index) -> ast.Expr:
            k = len(ind.shape)
            i = ind.at(idx[axis : axis + k])
            # ONNX allows negative indices, counted from the end. Out-of-range indices are clamped: a wrong
            # token id must not make the kernel read outside the table.
            i = ast.IfElse(ast.Compare(("<",), (i, ast.IntLit(0))), ast.BinOp("+", i, ast.IntLit(dim)), i)
            i = ast.Call("min", (ast.Call("max", (i, ast.IntLit(0))), ast.IntLit(dim - 1)))
            return x.at(idx[:axis] + [i] + idx[axis + k :])

        return at
    if op == "channel_shuffle_nchwc":
        return _channel_shuffle_map(a, inputs)
    if op == "expand":
        shape = types[node.outputs[0]].shape
        return lambda idx: x.at(broadcast_index(idx, shape, x.shape))
    if op == "layout_transform":
        b = a["block"]
        if a["to_blocked"]:  # [n, cb, h, w, c] <- [n, cb * B + c, h, w], zero past the last channel
            channels = x.shape[1]

            def blocked_at(idx: Index) -> ast.Expr:
                c = ast.BinOp("+", ast.BinOp("*", idx[1], ast.IntLit(b)), idx[4])
                if channels % b == 0:
                    return x.at([idx[0], c, idx[2], idx[3]])
                # padding lanes: the read is clamped so that it stays in bounds where the select discards it
                clamped = ast.Call("min", (c, ast.IntLit(channels - 1)))
                fill = float_literal(0.0) if x.dtype.startswith("float") else ast.IntLit(0)
                return ast.IfElse(ast.Compare(("<",), (c, ast.IntLit(channels))),
                                  x.at([idx[0], clamped, idx[2], idx[3]]), fill)

            return blocked_at
        return lambda idx: x.at([idx[0], ast.BinOp("//", idx[1], ast.IntLit(b)), idx[2], idx[3],
                                 ast.BinOp("%", idx[1], ast.IntLit(b))])
    raise UnsupportedOpError(f"injective op {op} has no DSL form")


def _channel_shuffle_map(a: Mapping, inputs: list[_Lazy]) -> Callable[[Index], ast.Expr]:
    """Output lane [n, cb, h, w, b] of a blocked channel shuffle (woodpecker.ir.ops.shuffle_source): kept channel
    j = start + cb * B + b, taken from channel (j % g) * C/g + j // g of the sources' concatenation. Where the
    sources are the g groups themselves (ShuffleNetV2: two halves of C/2), that is channel j // g of source j % g,
    which the select states directly.

    The sources are chosen with `select` (both reads made, every lane in bounds: each source's channel is clamped
    into its real channels, the padding lanes read channel stop - 1) and the padding lanes zeroed by a factor, not
    a condition over the read (TVM would simplify the clamp away under it). Why: with `a if c else b` over reads,
    TVM's vectorizer turned the lane loop into a scalar loop recomputing the index per element; ShuffleNet v1's
    shuffle at 28x28 ran 156 us that way, 31 us with selects."""
    block, channels, g = a["block"], list(a["channels"]), a["groups"]
    start, kept = a["start"], a["stop"] - a["start"]
    total = sum(channels)
    offsets = np.cumsum([0, *channels]).tolist()
    by_group = len(channels) == g and all(c == total // g for c in channels)

    def lit(v: int) -> ast.Expr:
        return ast.IntLit(int(v))

    def read(k: int, ch: ast.Expr, idx: Index) -> ast.Expr:
        x, b = inputs[k], inputs[k].shape[4]
        ch = ast.Call("min", (ast.Call("max", (ch, lit(0))), lit(channels[k] - 1)))
        return x.at([idx[0], ast.BinOp("//", ch, lit(b)), idx[2], idx[3], ast.BinOp("%", ch, lit(b))])

    def at(idx: Index) -> ast.Expr:
        c = ast.BinOp("+", ast.BinOp("*", idx[1], lit(block)), idx[4])
        if kept % block:
            c = ast.Call("min", (c, lit(kept - 1)))
        j = simplify(ast.BinOp("+", c, lit(start))) if start else c
        if g == 1:
            q = j
        elif by_group:
            local = ast.BinOp("//", j, lit(g))
            which = ast.BinOp("%", j, lit(g))
            expr = read(g - 1, local, idx)
            for k in range(g - 2, -1, -1):
                expr = ast.Call("select", (ast.Compare(("==",), (which, lit(k))), read(k, local, idx), expr))
            return _pad_lanes(idx, expr, block, kept, inputs[0].dtype)
        else:
            q = ast.BinOp("+", ast.BinOp("*", ast.BinOp("%", j, lit(g)), lit(total // g)), ast.BinOp("//", j, lit(g)))
        expr = read(len(channels) - 1, ast.BinOp("-", q, lit(offsets[-2])) if offsets[-2] else q, idx)
        for k in range(len(channels) - 2, -1, -1):
            local = ast.BinOp("-", q, lit(offsets[k])) if offsets[k] else q
            expr = ast.Call("select", (ast.Compare(("<",), (q, lit(offsets[k + 1]))), read(k, local, idx), expr))
        return _pad_lanes(idx, expr, block, kept, inputs[0].dtype)

    return at


def _pad_lanes(idx: Index, expr: ast.Expr, block: int, kept: int, dtype: str) -> ast.Expr:
    """Zero in the lanes past the last kept channel of a padded output block: the value times a 0/1 factor. A
    non-finite value in channel stop - 1 makes its padding lanes non-finite too; the blocked layout's padding
    contract (woodpecker.passes.layout) only keeps them finite for finite inputs, and a consumer convolution
    already sums that channel into every output."""
    if kept % block == 0:
        return expr
    c = ast.BinOp("+", ast.BinOp("*", idx[1], ast.IntLit(block)), idx[4])
    one, zero = (float_literal(1.0), float_literal(0.0)) if dtype.startswith("float") else (ast.IntLit(1), ast.IntLit(0))
    keep = ast.Call("select", (ast.Compare(("<",), (c, ast.IntLit(kept))), one, zero))
    return ast.BinOp("*", expr, keep)


def _shift(idx: Index, axis: int, offset: int) -> Index:
    if offset == 0:
        return idx
    out = list(idx)
    out[axis] = ast.BinOp("-", idx[axis], ast.IntLit(offset))
    return out


def _pad_map(a: Mapping, x: _Lazy) -> Callable[[Index], ast.Expr]:
    rank = len(x.shape)
    begin = a["pads"][:rank]
    mode = a.get("mode", "constant")

    def at(idx: Index) -> ast.Expr:
        src, conds = [], []
        for d in range(rank):
            j: ast.Expr = ast.BinOp("-", idx[d], ast.IntLit(begin[d])) if begin[d] else idx[d]
            n = x.shape[d]
            if mode == "constant":
                conds.append(ast.Compare(("<=", "<"), (ast.IntLit(0), j, ast.IntLit(n))))
            elif mode == "edge":
                j = ast.Call("min", (ast.Call("max", (j, ast.IntLit(0))), ast.IntLit(n - 1)))
            elif mode == "wrap":  # periodic: the padding repeats the tensor (`%` floors, so j < 0 wraps too)
                j = ast.BinOp("%", j, ast.IntLit(n))
            else:  # reflect about the first and last element
                j = ast.IfElse(ast.Compare(("<",), (j, ast.IntLit(0))), ast.Neg(j), j)
                j = ast.IfElse(ast.Compare((">",), (j, ast.IntLit(n - 1))),
                               ast.BinOp("-", ast.IntLit(2 * (n - 1)), j), j)
            src.append(j)
        if mode != "constant":
            return x.at(src)
        fill = float_literal(a.get("value", 0.0)) if x.dtype.startswith("float") else ast.IntLit(int(a.get("value", 0)))
        return ast.IfElse(ast.BoolOp("and", tuple(conds)) if len(conds) > 1 else conds[0], x.at(src), fill)

    return at


# ----------------------------------------------------------------------------------------------------------------
# anchor templates

TemplateArgs = list[tuple[str, str, tuple[int, ...]]]  # (template param, graph value, viewed shape)


def _window(a: Mapping) -> dict[str, int]:
    (sh, sw), (pt, pl, pb, pr) = a["strides"], a["pads"]
    dh, dw = a.get("dilations", (1, 1))
    return dict(SH=sh, SW=sw, PT=pt, PL=pl, PB=pb, PR=pr, DH=dh, DW=dw)


def anchor_spec(node: Node, types: Mapping[str, TensorType]) -> tuple[str, dict, TemplateArgs, tuple[int, ...]]:
    """Template name, bindings, arguments and natural output shape of an anchor node."""
    op, a = node.op, node.attrs
    ins = [types[v] for v in node.inputs]
    out = types[node.outputs[0]]
    if op == "conv2d":
        n, c, h, w = ins[0].shape
        k, _, r, s = ins[1].shape
        b = dict(N=n, C=c, H=h, W=w, K=k, R=r, S=s, G=a.get("groups", 1), **_window(a))
        return "conv2d", b, [("X", node.inputs[0], ins[0].shape), ("Wt", node.inputs[1], ins[1].shape)], out.shape
    if op == "conv2d_nchwc":
        n, cb, h, w, ib = ins[0].shape
        kb, _, r, s, _, ob = ins[1].shape
        b = dict(N=n, CB=cb, H=h, W=w, IB=ib, KB=kb, OB=ob, R=r, S=s, **_window(a))
        template = "conv2d_nchwc"
        if a.get("groups", 1) > 1:  # a separate template, so that ungrouped kernels (and their records) keep their text
            template = "grouped_conv2d_nchwc"
            b["G"] = a["groups"]
        return template, b, [("X", node.inputs[0], ins[0].shape), ("Wt", node.inputs[1], ins[1].shape)], out.shape
    if op == "conv2d_winograd_nchwc":
        n, cb, h, w, ib = ins[0].shape
        _, kb, _, _, ob = ins[1].shape
        oh, ow = out.shape[2:4]
        pt, pl = a["pads"][:2]
        b = dict(N=n, CB=cb, H=h, W=w, IB=ib, KB=kb, OB=ob, OH=oh, OW=ow, TH=winograd.tiles(oh), TW=winograd.tiles(ow),
                 PT=pt, PL=pl)
        return "conv2d_winograd_nchwc", b, [("X", node.inputs[0], ins[0].shape), ("U", node.inputs[1], ins[1].shape)], out.shape
    if op == "depthwise_conv2d_nchwc":
        n, cb, h, w, blk = ins[0].shape
        _, r, s, _ = ins[1].shape
        b = dict(N=n, CB=cb, H=h, W=w, B=blk, R=r, S=s, **_window(a))
        return "depthwise_conv2d_nchwc", b, [("X", node.inputs[0], ins[0].shape), ("Wt", node.inputs[1], ins[1].shape)], out.shape
    if op == "dense":
        (m, k), (nn, _) = ins[0].shape, ins[1].shape
        return "dense", dict(M=m, K=k, N=nn), [("X", node.inputs[0], ins[0].shape), ("Wt", node.inputs[1], ins[1].shape)], out.shape
    if op == "dense_packed":
        m, k = ins[0].shape
        nb, _, blk = ins[1].shape
        args = [("X", node.inputs[0], ins[0].shape), ("Wt", node.inputs[1], ins[1].shape)]
        return "dense_packed", dict(M=m, K=k, NB=nb, B=blk), args, (m, nb, blk)
    if op == "batch_matmul":
        if a.get("trans_a"):
            raise UnsupportedOpError("batch_matmul with a transposed first operand has no template")
        ba, m, k = ins[0].shape
        bb = ins[1].shape[0]
        nn = ins[1].shape[1] if a.get("trans_b") else ins[1].shape[2]
        args = [("A", node.inputs[0], ins[0].shape), ("Bm", node.inputs[1], ins[1].shape)]
        name = "batch_matmul_nt" if a.get("trans_b") else "batch_matmul"
        return name, dict(BT=out.shape[0], BA=ba, BB=bb, M=m, K=k, N=nn), args, out.shape
    if op in ("max_pool2d", "avg_pool2d"):
        shape5 = ins[0].shape if ins[0].rank == 5 else ins[0].shape + (1,)
        n, c, h, w, blk = shape5
        (r, s) = a["kernel"]
        b = dict(N=n, C=c, H=h, W=w, B=blk, R=r, S=s, **_window(a))
        if op == "avg_pool2d":
            ct, cl, cbt, cr = a.get("count_pads", (0, 0, 0, 0))
            b.update(CT=ct, CL=cl, CBT=cbt, CR=cr)
        oshape = out.shape if out.rank == 5 else out.shape + (1,)
        return op, b, [("X", node.inputs[0], shape5)], oshape
    if op in ("global_avg_pool", "global_max_pool"):
        shape5 = ins[0].shape if ins[0].rank == 5 else ins[0].shape + (1,)
        n, c, h, w, blk = shape5
        return op, dict(N=n, C=c, H=h, W=w, B=blk), [("X", node.inputs[0], shape5)], (n, c, blk)
    if op in ("softmax", "log_softmax"):
        o, d, i = ins[0].shape
        if op == "softmax" and i == 1 and d > ROW_VECTOR and d % ROW_VECTOR:
            # a contiguous row of no whole number of vectors: split into vectors and a tail (kernels/norm.wpl)
            return "softmax_rows", dict(O=o, D=d, DA=d - d % ROW_VECTOR), [("X", node.inputs[0], (o, d))], (o, d)
        return op, dict(O=o, D=d, I=i), [("X", node.inputs[0], ins[0].shape)], out.shape
    if op == "layer_norm":
        o, d = ins[0].shape
        args = [("X", node.inputs[0], ins[0].shape), ("Scale", node.inputs[1], (d,)), ("Bias", node.inputs[2], (d,))]
        return "layer_norm", dict(O=o, D=d, EPS=float(a["epsilon"])), args, out.shape
    if op == "lrn":
        n, c, h, w = ins[0].shape
        b = dict(N=n, C=c, H=h, W=w, SIZE=a["size"], ALPHA=float(a["alpha"]), BETA=float(a["beta"]), BIAS=float(a["bias"]))
        return "lrn", b, [("X", node.inputs[0], ins[0].shape)], out.shape
    if op == "reduce":
        o, r, i = ins[0].shape
        return f"reduce_{a['kind']}", dict(O=o, R=r, I=i), [("X", node.inputs[0], ins[0].shape)], out.shape
    raise UnsupportedOpError(f"operator {op} has no kernel template")
