"""DSL -> TVM TE -> TIR PrimFunc. Each compute statement becomes one te.compute (one TIR block of that name).

Index arithmetic is int32, tensor arithmetic takes the dtype of its tensor operands; literals adopt the dtype of
the other operand. `a if c else b` lowers to tirx.if_then_else, which never evaluates the untaken branch (padding
reads out of bounds in it); `select(c, a, b)` to tirx.Select, which evaluates both: TVM's vectorizer keeps a
vector loop of selects vectorized, but turns one holding an if_then_else over reads into a scalar loop.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Mapping

from woodpecker.dsl import ast
from woodpecker.dsl.check import check_kernel
from woodpecker.dsl.narrow import NARROW_BUILTINS, lower_narrow
from woodpecker.dsl.transform import substitute
from woodpecker.errors import DSLError


@dataclasses.dataclass(frozen=True)
class _Lit:
    """A literal whose dtype is decided by the operand it meets."""

    value: int | float | bool


def inline_fns(e: ast.Expr, fns: Mapping[str, ast.FnDef], depth: int = 0) -> ast.Expr:
    from woodpecker.dsl.transform import map_children

    if depth > 32:
        raise DSLError("fn calls nest too deeply (recursive fn?)", *e.pos)
    e = map_children(e, lambda c: inline_fns(c, fns, depth))
    if isinstance(e, ast.Call) and e.func in fns:
        fn = fns[e.func]
        body = substitute(fn.body, dict(zip(fn.params, e.args)))
        return inline_fns(body, fns, depth + 1)
    return e


def dtype_of(x) -> str:
    """dtype of a TIR expression (TVM 0.27 keeps it as a PrimType in `.ty`; a tensor element is a TensorSlice)."""
    if hasattr(x, "asobject"):
        x = x.asobject()
    return str(x.ty)


class _Emitter:
    def __init__(self, tensors: dict, fns: Mapping[str, ast.FnDef]) -> None:
        import tvm
        from tvm import te, tirx

        self.tvm, self.te, self.tirx = tvm, te, tirx
        self.tensors = tensors
        self.fns = fns

    # -- literal coercion --------------------------------------------------------------------------------------
    def const(self, lit: _Lit, dtype: str):
        v = lit.value
        if dtype.startswith("float"):
            v = float(v)
        elif dtype == "bool":
            v = bool(v)
        elif v in (float("inf"), float("-inf")):
            # `-inf` is the identity of max (the padding of a max pool): in an integer type, the type's extreme
            import numpy as np

            info = np.iinfo(dtype)
            v = int(info.max if v > 0 else info.min)
        else:
            v = int(v)
        return self.tirx.const(v, dtype)

    def value(self, v, like=None):
        if isinstance(v, _Lit):
            if like is not None and not isinstance(like, _Lit):
                return self.const(v, dtype_of(like))
            if isinstance(v.value, bool):
                return self.const(v, "bool")
            return self.const(v, "int32" if isinstance(v.value, int) else "float32")
        if hasattr(v, "asobject"):
            return v.asobject()
        return v

    def pair(self, a, b):
        if isinstance(a, _Lit) and isinstance(b, _Lit) and any(isinstance(x.value, float) for x in (a, b)):
            # two literals, one of them a float: compare/compute in float (`2 >= 2.5` must not become `2 >= 2`)
            return self.const(a, "float32"), self.const(b, "float32")
        a2 = self.value(a, b)
        b2 = self.value(b, a2)
        ta, tb = dtype_of(a2), dtype_of(b2)
        if ta != tb:
            fa, fb = ta.startswith("float"), tb.startswith("float")
            if fa and not fb:
                b2 = b2.astype(ta)
            elif fb and not fa:
                a2 = a2.astype(tb)
            elif ta.startswith("int") and tb.startswith("int"):
                # mixed index widths (an int64 gather index with an int32 loop variable)
                wide = "int64" if "int64" in (ta, tb) else ta
                a2, b2 = a2.astype(wide), b2.astype(wide)
            else:
                b2 = b2.astype(ta)
        return a2, b2

    # -- expressions -------------------------------------------------------------------------------------------
    def emit(self, e: ast.Expr, env: dict):
        tirx = self.tirx
        if isinstance(e, (ast.IntLit, ast.FloatLit, ast.BoolLit)):
            return _Lit(e.value)
        if isinstance(e, ast.Var):
            return env[e.name]
        if isinstance(e, ast.Access):
            indices = []
            for i in e.indices:
                v = self.value(self.emit(i, env))
                if dtype_of(v) != "int32":
                    v = v.astype("int32")
                indices.append(v)
            return self.tensors[e.tensor][tuple(indices)]
        if isinstance(e, ast.BinOp):
            a, b = self.emit(e.lhs, env), self.emit(e.rhs, env)
            if isinstance(a, _Lit) and isinstance(b, _Lit):
                a = self.value(a)
            a, b = self.pair(a, b)
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":
                if not dtype_of(a).startswith("float"):
                    raise DSLError("'/' divides floats; use '//' for integer division", *e.pos)
                return _float_div(a, b)
            if e.op == "//":
                return tirx.floordiv(a, b)
            if e.op == "%":
                return tirx.floormod(a, b)
            if e.op == "**":
                return tirx.power(a, b)
        if isinstance(e, ast.Neg):
            v = self.emit(e.operand, env)
            if isinstance(v, _Lit):
                return _Lit(-v.value)
            v = self.value(v)
            return -v if dtype_of(v).startswith("float") else tirx.const(0, dtype_of(v)) - v
        if isinstance(e, ast.Compare):
            operands = [self.emit(o, env) for o in e.operands]
            terms = []
            for op, a, b in zip(e.ops, operands, operands[1:]):
                a2, b2 = self.pair(a, b)
                if dtype_of(a2) == "bool":
                    # TVM's LLVM codegen compares i1 values with fcmp (an invalid module); compare them as int8
                    a2, b2 = a2.astype("int8"), b2.astype("int8")
                terms.append({"<": tirx.LT, "<=": tirx.LE, ">": tirx.GT, ">=": tirx.GE, "==": tirx.EQ, "!=": tirx.NE}[op](a2, b2))
            return terms[0] if len(terms) == 1 else tirx.all(*terms)
        if isinstance(e, ast.BoolOp):
            terms = [self.value(self.emit(o, env)) for o in e.operands]
            return tirx.all(*terms) if e.op == "and" else tirx.any(*terms)
        if isinstance(e, ast.Not):
            return tirx.Not(self.value(self.emit(e.operand, env)))
        if isinstance(e, ast.IfElse):
            cond = self.value(self.emit(e.cond, env))
            a, b = self.pair(self.emit(e.then, env), self.emit(e.otherwise, env))
            return tirx.if_then_else(cond, a, b)
        if isinstance(e, ast.Call):
            return self.call(e, env)
        if isinstance(e, ast.Reduce):
            raise DSLError("a reduction must be the whole right-hand side of a statement", *e.pos)
        raise TypeError(f"cannot lower {e!r}")

    def call(self, e: ast.Call, env: dict):
        tirx = self.tirx
        if e.func in ast.DTYPES:
            v = self.emit(e.args[0], env)
            if isinstance(v, _Lit):
                return self.const(v, ast.DTYPES[e.func])
            return v.astype(ast.DTYPES[e.func])
        args = [self.emit(a, env) for a in e.args]
        if e.func == "select":
            a, b = self.pair(args[1], args[2])
            return tirx.Select(self.value(args[0]), a, b)
        if e.func in ("max", "min", "pow"):
            a, b = self.pair(*args)
            return {"max": tirx.max, "min": tirx.min, "pow": tirx.power}[e.func](a, b)
        if e.func == "fmod":
            a, b = self.pair(*args)
            return _libm(dtype_of(a), "fmod", a, b)
        x = self.value(args[0])
        if e.func in NARROW_BUILTINS:
            return lower_narrow(e.func, x, dtype_of(x))
        if e.func == "abs" and dtype_of(x).startswith("int"):
            return tirx.abs(x)  # |x| of an integer stays an integer (ONNX Abs on int64)
        if not dtype_of(x).startswith("float"):
            x = x.astype("float32")
        if e.func in ("sinh", "cosh"):  # TVM's LLVM backend has no lowering for these intrinsics
            return _libm(dtype_of(x), e.func, x)
        if e.func in ("isnan", "isinf"):
            return _float_class(x, e.func)
        if dtype_of(x) == "float32" and e.func in ("exp", "erf", "tanh", "sigmoid"):
            # libm's expf/erff are scalar calls (erf-GELU ran at 12 ns per element); these polynomial forms
            # vectorize and are accurate to a few float32 ulps.
            return {"exp": fast_exp, "erf": fast_erf, "tanh": fast_tanh, "sigmoid": fast_sigmoid}[e.func](x)
        fn = {"exp": tirx.exp, "log": tirx.log, "sqrt": tirx.sqrt, "rsqrt": tirx.rsqrt, "tanh": tirx.tanh,
              "sigmoid": tirx.sigmoid, "erf": tirx.erf, "abs": tirx.abs, "floor": tirx.floor, "ceil": tirx.ceil,
              "sin": tirx.sin, "cos": tirx.cos, "tan": tirx.tan, "asin": tirx.asin, "acos": tirx.acos,
              "atan": tirx.atan, "sinh": tirx.sinh, "cosh": tirx.cosh, "asinh": tirx.asinh, "acosh": tirx.acosh,
              "atanh": tirx.atanh, "trunc": tirx.trunc,
              # nearbyint rounds in the default mode, to nearest with ties to even (ONNX Round); tirx.round
              # rounds ties away from zero
              "round": tirx.nearbyint}
        return fn[e.func](x)

    def reduce(self, e: ast.Reduce, env: dict, stmt_name: str):
        te = self.te
        axes = [te.reduce_axis((0, a.extent.value), name=a.name) for a in e.axes]
        inner = dict(env)
        inner.update({a.name: ax.var for a, ax in zip(e.axes, axes)})
        body = self.value(self.emit(e.body, inner))
        if e.reducer == "sum":
            return te.sum(body, axis=axes)
        # TVM's max/min start from the lowest/highest *finite* value, so a max over elements that are all -inf
        # gives -3.4e38. A reducer with identity -inf would be exact, but TVM matches reducers by their identity:
        # rfactor and GPU cross-thread reductions refuse it ("No matched reducer").
        if e.reducer == "max":
            return te.max(body, axis=axes)
        return te.min(body, axis=axes)


def _float_div(a, b):
    """a / b. TVM's simplifier folds a divisor such as x - x or x * 0 to the constant 0 and then refuses to fold
    the division ("Divide by zero") while building the kernel: for such a divisor, IEEE's a / +-0 is written out
    (+-inf by the sign of a, NaN for 0 / 0 and NaN / 0)."""
    import math

    from tvm import tirx
    from tvm.sym.analyzer import Analyzer

    divisor = Analyzer().simplify(b)
    if not (isinstance(divisor, tirx.FloatImm) and divisor.value == 0.0):
        return a / b
    dtype = dtype_of(a)
    inf = tirx.const(math.copysign(math.inf, divisor.value), dtype)
    zero = tirx.const(0.0, dtype)
    return tirx.if_then_else(a > zero, inf, tirx.if_then_else(a < zero, -inf, tirx.const(math.nan, dtype)))


def _libm(dtype: str, name: str, *args):
    """A call of the C math library (`fmodf` for float32, `fmod` for float64)."""
    from tvm import tirx

    return tirx.call_pure_extern(dtype, name + ("f" if dtype == "float32" else ""), *args)


def _float_class(x, what: str):
    """isnan/isinf by the bits of x: LLVM's fast-math flags let `x != x` and `x == inf` fold to constants."""
    from tvm import tirx

    bits = 64 if dtype_of(x) == "float64" else 32
    itype = f"int{bits}"
    magnitude = tirx.reinterpret(itype, x) & tirx.const((1 << (bits - 1)) - 1, itype)
    inf = tirx.const(0x7FF0000000000000 if bits == 64 else 0x7F800000, itype)
    return magnitude > inf if what == "isnan" else magnitude == inf


def _poly(x, coefficients):
    """Horner evaluation, highest degree first."""
    from tvm import tirx

    acc = tirx.const(coefficients[0], "float32")
    for c in coefficients[1:]:
        acc = acc * x + tirx.const(c, "float32")
    return acc


def fast_exp(x):
    """exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln(2)/2; Cephes' degree-6 polynomial for exp(r),
    2^n built in the exponent bits (as 2^(n-1) * 2, so that n = 128 stays encodable). Relative error below 3e-7;
    overflows to inf above 88.72 and flushes to 0 below -87.3, like expf."""
    from tvm import tirx

    big = tirx.const(88.72283935546875, "float32")
    xc = tirx.max(tirx.min(x, big), tirx.const(-87.3, "float32"))
    n = tirx.floor(xc * tirx.const(1.44269504088896341, "float32") + tirx.const(0.5, "float32"))
    r = xc - n * tirx.const(0.693359375, "float32") + n * tirx.const(2.12194440e-4, "float32")
    p = _poly(r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                  5.0000001201e-1])
    p = p * r * r + r + tirx.const(1.0, "float32")
    bits = tirx.shift_left(n.astype("int32") + tirx.const(126, "int32"), tirx.const(23, "int32"))
    value = p * tirx.reinterpret("float32", bits) * tirx.const(2.0, "float32")
    return tirx.Select(x > big, tirx.const(float("inf"), "float32"), value)


def fast_erf(x):
    """Rational approximation of erf on [-4, 4] (outside it erf is +-1 in float32), as in Eigen and TVM's
    fast_erf: odd degree-13 numerator over even degree-8 denominator."""
    from tvm import tirx

    x = tirx.max(tirx.min(x, tirx.const(4.0, "float32")), tirx.const(-4.0, "float32"))
    x2 = x * x
    p = x * _poly(x2, [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                       -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02])
    q = _poly(x2, [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                   -1.42647390514189e-02])
    return p / q


def fast_tanh(x):
    """tanh(x) = 1 - 2 / (exp(2x) + 1), on the fast exp (saturates correctly at both ends)."""
    from tvm import tirx

    one = tirx.const(1.0, "float32")
    return one - tirx.const(2.0, "float32") / (fast_exp(x * tirx.const(2.0, "float32")) + one)


def fast_sigmoid(x):
    from tvm import tirx

    one = tirx.const(1.0, "float32")
    return one / (one + fast_exp(-x))


def _fcompute(emitter: _Emitter, value: ast.Expr, names: list[str], stmt_name: str):
    def body(*idx):
        env = dict(zip(names, idx))
        if isinstance(value, ast.Reduce):
            return emitter.reduce(value, env, stmt_name)
        return emitter.value(emitter.emit(value, env))

    # te.compute names the loop variables after fcompute's positional parameters; give it the DSL's index names
    # so that the TIR (and every schedule trace) reads `n, k, y, x` rather than `i0, i1, i2, i3`.
    args = ", ".join(n + "_" if keyword.iskeyword(n) or n == "body" else n for n in names)
    return eval(f"lambda {args}: body({args})", {"body": body})  # noqa: S307 (names are DSL identifiers)


def to_te(kernel: ast.Kernel, fns: Mapping[str, ast.FnDef]):
    """Returns (params, output, all tensors by name) as TE tensors."""
    from tvm import te

    check_kernel(kernel, fns, kernel.name)
    if kernel.template_params:
        raise DSLError(f"kernel {kernel.name} is a template; instantiate it first", *kernel.pos)
    tensors: dict = {}
    params = []
    for p in kernel.params:
        shape = [int(d.value) for d in p.shape]  # type: ignore[union-attr]
        t = te.placeholder(shape, dtype=p.dtype, name=p.name)
        tensors[p.name] = t
        params.append(t)
    emitter = _Emitter(tensors, fns)
    for s in kernel.computes:
        value = inline_fns(s.value, fns)
        shape = [int(a.extent.value) for a in s.axes]  # type: ignore[union-attr]
        names = [a.name for a in s.axes]

        if not shape:
            raise DSLError(f"statement {s.name} must have at least one index", *s.pos)
        tensors[s.name] = te.compute(shape, _fcompute(emitter, value, names, s.name), name=s.name)
    return params, tensors[kernel.output], tensors


def to_prim_func(kernel: ast.Kernel, fns: Mapping[str, ast.FnDef]):
    from tvm import te

    params, output, _ = to_te(kernel, fns)
    return te.create_prim_func([*params, output])
