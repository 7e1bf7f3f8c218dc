"""DSL transforms: range-aware simplification, template instantiation, copy elimination, flop counts."""

from __future__ import annotations

import pytest

from woodpecker.dsl import ast, printer
from woodpecker.dsl.check import check_kernel
from woodpecker.dsl.library import default_library
from woodpecker.dsl.parser import parse, parse_kernel
from woodpecker.dsl.transform import eliminate_copies, flops, instantiate, int_range, simplify, substitute
from woodpecker.errors import DSLError

LIB = default_library()


def E(text: str) -> ast.Expr:
    return parse(f"fn f() = {text}").fns[0].body


def S(text: str, **ranges) -> str:
    return printer.expr(simplify(E(text), ranges))


# ----------------------------------------------------------------------------------------------------------------
# simplify


@pytest.mark.parametrize("text, ranges, expected", [
    # blocked-layout index arithmetic
    ("(q * 16 + r) // 16", dict(q=(0, 3), r=(0, 15)), "q"),
    ("(q * 16 + r) % 16", dict(q=(0, 3), r=(0, 15)), "r"),
    ("(r + 16 * q) // 16", dict(q=(0, 3), r=(0, 15)), "q"),
    ("(r + q * 16) % 16", dict(q=(0, 3), r=(0, 15)), "r"),
    # r may reach 16: no rewrite
    ("(q * 16 + r) // 16", dict(q=(0, 3), r=(0, 16)), "(q * 16 + r) // 16"),
    ("(q * 16 + r) % 16", dict(q=(0, 3), r=(-1, 15)), "(q * 16 + r) % 16"),
    ("(q * 8 + r) // 16", dict(q=(0, 3), r=(0, 7)), "(q * 8 + r) // 16"),
    # small dividends
    ("i // 8", dict(i=(0, 7)), "0"),
    ("i % 8", dict(i=(0, 7)), "i"),
    ("i // 1", dict(i=(0, 9)), "i"),
    ("i % 1", dict(i=(0, 9)), "0"),
    # padding conditions that always hold vanish, the others stay
    ("X[h] if 0 <= h < 56 else 0.0", dict(h=(0, 55)), "X[h]"),
    ("X[h] if 1 <= h < 56 else 0.0", dict(h=(0, 55)), "X[h] if 1 <= h else 0.0"),
    ("X[h] if 1 <= h < 57 and 0 <= w < 9 else 0.0", dict(h=(0, 55), w=(0, 8)), "X[h] if 1 <= h else 0.0"),
    ("X[h] if 0 <= h - 1 < 56 else 0.0", dict(h=(0, 57)), "X[h] if 0 <= h - 1 < 56 else 0.0"),
    ("X[h] if 60 <= h else 0.0", dict(h=(0, 55)), "0.0"),
    ("1 <= h < 56 and w < 3 or false", dict(h=(0, 55), w=(0, 8)), "1 <= h and w < 3"),
    ("0 <= h < 56 < 60 <= w", dict(h=(0, 55), w=(0, 80)), "60 <= w"),
    ("a < b", {}, "a < b"),
    ("2.0 < 1.5", {}, "false"),
    ("2 >= 2.5", {}, "false"),  # an integer against a float literal is decided too
    ("X[i] if 3 > 2.5 else 0.0", {}, "X[i]"),
    # unit extents become constants, 1x1 reductions drop their axes
    ("X[n, c]", dict(n=(0, 0), c=(0, 3)), "X[0, c]"),
    ("sum(X[k, r] for k < 1, r < 3)", {}, "sum(X[0, r] for r < 3)"),
    ("sum(X[k, r] * W[r, s] for k < 1, r < 1, s < 1)", {}, "X[0, 0] * W[0, 0]"),
    ("max(X[k] for k < 1)", {}, "X[0]"),
    ("sum(2.0 for k < 3, r < 3)", {}, "18.0"),
    ("max(2.0 for k < 3)", {}, "2.0"),
    # constant folding and integer identities
    ("(H + 2 - 3) // 2 + 1", dict(H=(9, 9)), "5"),
    ("x - 3 + 3", dict(x=(0, 4)), "x"),
    ("i * 0 + j * 1 + 0", dict(i=(0, 3), j=(0, 3)), "j"),
    ("1.0 + 2.0 * 3.0", {}, "7.0"),
    ("-(-x)", {}, "x"),
    ("-(3)", {}, "-3"),
    ("f32(3) + i32(2.5)", {}, "5.0"),
    ("X[i] + f32(3) * i32(2.5)", {}, "X[i] + 6.0"),
    ("not true", {}, "false"),
    ("a if b else a", {}, "a"),
])
def test_simplify(text, ranges, expected):
    assert S(text, **ranges) == expected


@pytest.mark.parametrize("text", [
    "X[i] // 1",  # floor of a float
    "X[i] % 1",  # fraction of a float
    "X[i] * 0",  # NaN/inf * 0 is not 0
    "X[i] * 1.0 + 0.0",  # float identities are left alone (-0.0 + 0.0, signalling of NaN...)
])
def test_simplify_leaves_float_arithmetic_alone(text):
    assert S(text) == text


def test_int_range():
    r = {"i": (0, 3), "j": (-2, 5)}
    assert int_range(E("i * 4 + j"), r) == (-2, 17)
    assert int_range(E("i - j"), r) == (-5, 5)
    assert int_range(E("-i"), r) == (-3, 0)
    assert int_range(E("j // 2"), r) == (-1, 2)
    assert int_range(E("j % 4"), r) == (0, 3)
    assert int_range(E("i % 4"), r) == (0, 3)
    assert int_range(E("X[i]"), r) is None
    assert int_range(E("k"), r) is None


def test_substitute_respects_reduction_scope():
    e = E("sum(X[k] * k + n for k < K)")
    out = substitute(e, {"k": ast.IntLit(7), "n": ast.IntLit(2), "K": ast.IntLit(4)})
    assert printer.expr(out) == "sum(X[k] * k + 2 for k < 4)"


# ----------------------------------------------------------------------------------------------------------------
# instantiate

_WIN = dict(SH=1, SW=1, PT=1, PL=1, PB=1, PR=1, DH=1, DW=1)
BINDINGS = {
    "conv2d": dict(N=1, C=8, H=14, W=14, K=16, R=3, S=3, G=2, **_WIN),
    "conv2d_nchwc": dict(N=1, CB=2, H=14, W=14, IB=8, KB=4, OB=16, R=3, S=3, **_WIN),
    "grouped_conv2d_nchwc": dict(N=1, CB=4, H=14, W=14, IB=16, KB=4, OB=16, G=4, R=3, S=3, **_WIN),
    "conv2d_winograd_nchwc": dict(N=1, CB=2, H=14, W=14, IB=16, KB=4, OB=16, OH=14, OW=14, TH=4, TW=4, PT=1, PL=1),
    "depthwise_conv2d_nchwc": dict(N=1, CB=4, H=14, W=14, B=8, R=3, S=3, **_WIN),
    "dense": dict(M=1, K=512, N=1000),
    "dense_packed": dict(M=1, K=512, NB=64, B=16),
    "batch_matmul": dict(BT=4, BA=4, BB=1, M=32, K=64, N=32),
    "batch_matmul_nt": dict(BT=4, BA=4, BB=4, M=32, K=64, N=32),
    "max_pool2d": dict(N=1, C=4, H=56, W=56, B=16, R=3, S=3, **{**_WIN, "SH": 2, "SW": 2}),
    "avg_pool2d": dict(N=1, C=4, H=56, W=56, B=16, R=3, S=3, **{**_WIN, "SH": 2, "SW": 2}, CT=0, CL=0, CBT=0, CR=0),
    "global_avg_pool": dict(N=1, C=32, H=7, W=7, B=16),
    "global_max_pool": dict(N=1, C=32, H=7, W=7, B=16),
    "softmax": dict(O=4, D=128, I=1),
    "softmax_rows": dict(O=4, D=197, DA=192),
    "log_softmax": dict(O=4, D=128, I=1),
    "layer_norm": dict(O=128, D=256, EPS=1e-12),
    "lrn": dict(N=1, C=64, H=28, W=28, SIZE=5, ALPHA=1e-4, BETA=0.75, BIAS=1.0),
    "reduce_sum": dict(O=1, R=49, I=64),
    "reduce_mean": dict(O=1, R=49, I=64),
    "reduce_sum_square": dict(O=8, R=16, I=1),
    "reduce_max": dict(O=8, R=16, I=1),
    "reduce_min": dict(O=8, R=16, I=1),
}


def test_bindings_cover_the_library():
    assert set(BINDINGS) == set(LIB.templates)


def _concrete(e: ast.Expr) -> bool:
    return all(not isinstance(x, ast.Var) or len(x.name) <= 2 and x.name.islower() for x in ast.walk(e))


@pytest.mark.parametrize("name", sorted(BINDINGS))
def test_instantiate_every_template(name):
    template = LIB.template(name)
    k = instantiate(template, BINDINGS[name])
    check_kernel(k, LIB.fns)
    assert k.template_params == () and not any(isinstance(s, ast.Let) for s in k.body)
    assert k.attribute("family") == template.attribute("family")
    for p in k.params:
        assert all(isinstance(d, ast.IntLit) for d in p.shape)
    for s in k.computes:
        assert all(isinstance(a.extent, ast.IntLit) for a in s.axes)
        # no template parameter or let constant is left over: only (lowercase) index variables remain
        assert _concrete(s.value), printer.stmt(s)
    # the printed program parses back to the same kernel
    assert parse_kernel(printer.kernel(k)) == k


def test_instantiate_renames_parameters_and_statements():
    k = instantiate(LIB.template("softmax"), dict(O=2, D=8, I=1), name="sm",
                    param_names={"X": "In", "Y": "Out", "Mx": "M2"})
    assert k.name == "sm" and k.output == "Out" and [p.name for p in k.params] == ["In"]
    assert [s.name for s in k.computes] == ["M2", "E", "Sm", "Out"]
    check_kernel(k, LIB.fns)


def test_instantiate_bindings_must_match_the_template_parameters():
    with pytest.raises(DSLError, match="missing"):
        instantiate(LIB.template("dense"), dict(M=1, K=2))
    with pytest.raises(DSLError, match="unknown"):
        instantiate(LIB.template("dense"), dict(M=1, K=2, N=3, Q=4))


def test_instantiate_drops_padding_when_there_is_none():
    padded = instantiate(LIB.template("conv2d"), BINDINGS["conv2d"])
    assert [s.name for s in padded.computes] == ["Xp", "Y"]
    assert isinstance(padded.statement("Xp").value, ast.IfElse)
    unpadded = instantiate(LIB.template("conv2d"), {**BINDINGS["conv2d"], "PT": 0, "PL": 0, "PB": 0, "PR": 0})
    # the padding statement is an identity copy of X: it is gone and the convolution reads X directly
    assert [s.name for s in unpadded.computes] == ["Y"]
    assert "Xp" not in printer.kernel(unpadded) and "X[0, " in printer.stmt(unpadded.statement("Y"))
    check_kernel(unpadded, LIB.fns)
    # padding only at the bottom and right: only the upper bounds are checked
    br = instantiate(LIB.template("conv2d_nchwc"), {**BINDINGS["conv2d_nchwc"], "PT": 0, "PL": 0})
    assert printer.expr(br.statement("Xp").value) == "X[0, cb, h, w, ci] if h < 14 and w < 14 else 0.0"


def test_instantiate_ungrouped_convolution_has_no_group_arithmetic():
    k = instantiate(LIB.template("conv2d"), {**BINDINGS["conv2d"], "G": 1})
    assert printer.expr(k.statement("Y").value) == (
        "sum(Xp[0, rc, y + r, x + s] * Wt[k, rc, r, s] for rc < 8, r < 3, s < 3)"
    )
    grouped = instantiate(LIB.template("conv2d"), BINDINGS["conv2d"])
    assert "k // 8 * 4 + rc" in printer.expr(grouped.statement("Y").value)


def test_instantiate_1x1_reductions_drop_their_axes():
    k = instantiate(LIB.template("conv2d"), dict(BINDINGS["conv2d"], R=1, S=1, G=1, PT=0, PL=0, PB=0, PR=0))
    y = k.statement("Y").value
    assert isinstance(y, ast.Reduce) and [a.name for a in y.axes] == ["rc"]
    assert printer.expr(y) == "sum(X[0, rc, y, x] * Wt[k, rc, 0, 0] for rc < 8)"
    dw = instantiate(LIB.template("depthwise_conv2d_nchwc"), dict(BINDINGS["depthwise_conv2d_nchwc"], R=1, S=1,
                                                                     PT=0, PL=0, PB=0, PR=0))
    assert printer.expr(dw.statement("Y").value) == "X[0, c, y, x, b] * Wt[c, 0, 0, b]"  # no reduction left


def test_instantiate_full_average_pool_windows_have_a_constant_divisor():
    k = instantiate(LIB.template("avg_pool2d"), dict(BINDINGS["avg_pool2d"], R=2, S=2, PT=0, PL=0, PB=0, PR=0))
    assert [s.name for s in k.computes] == ["Sm", "Y"]
    assert printer.expr(k.statement("Y").value) == "Sm[0, c, y, x, b] / 4.0"
    # partial windows at the border keep a closed-form count of the window positions inside the input
    k = instantiate(LIB.template("avg_pool2d"), BINDINGS["avg_pool2d"])
    assert [s.name for s in k.computes] == ["Xp", "Sm", "Y"]
    assert printer.expr(k.statement("Y").value) == "Sm[0, c, y, x, b] / f32((3 - max(0, 1 - y * 2)) * (3 - max(0, 1 - x * 2)))"


def test_instantiate_lets_evaluate_to_constants():
    tmpl = parse_kernel("kernel t<A>(X: f32[A]) -> Y {\n  let B = A // 2\n  Y[i < B] = X[i * 2]\n}\n")
    k = instantiate(tmpl, {"A": 8})
    assert printer.kernel(k) == "kernel t(X: f32[8]) -> Y {\n  Y[i < 4] = X[i * 2]\n}"
    bad = parse_kernel("kernel t<A>(X: f32[A]) -> Y {\n  let B = A + i\n  Y[j < 2] = X[j]\n}\n")
    with pytest.raises(DSLError, match="let B"):
        instantiate(bad, {"A": 8})


# ----------------------------------------------------------------------------------------------------------------
# eliminate_copies


def test_eliminate_copies():
    k = parse_kernel(
        "kernel k(X: f32[1, 4, 8], W: f32[4]) -> Y {\n"
        "  C[n < 1, c < 4, w < 8] = X[0, c, w]\n"  # identity copy: gone
        "  P[c < 4, n < 1, w < 8] = X[n, c, w]\n"  # permuted: a real statement
        "  K[c < 4] = 2.0\n"  # a constant tensor: inlined
        "  Y[n < 1, c < 4, w < 8] = C[n, c, w] * W[c] + P[c, n, w] * K[c]\n"
        "}\n"
    )
    out = eliminate_copies(k)
    assert [s.name for s in out.computes] == ["P", "Y"]
    assert printer.stmt(out.statement("Y")) == "Y[n < 1, c < 4, w < 8] = X[0, c, w] * W[c] + P[c, 0, w] * 2.0"
    check_kernel(out, {})


def test_eliminate_copies_keeps_the_output_and_partial_copies():
    k = parse_kernel(
        "kernel k(X: f32[4, 8]) -> Y {\n"
        "  H[i < 4, j < 4] = X[i, j]\n"  # copies only half of X
        "  Y[i < 4, j < 4] = H[i, j]\n"  # the output itself is never dropped
        "}\n"
    )
    out = eliminate_copies(k)
    assert [s.name for s in out.computes] == ["H", "Y"]
    k2 = parse_kernel("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i]\n}\n")
    assert eliminate_copies(k2) == k2


# ----------------------------------------------------------------------------------------------------------------
# flops


def test_flops():
    assert flops(instantiate(LIB.template("dense"), dict(M=2, K=64, N=10))) == 2 * 2 * 64 * 10
    conv = instantiate(LIB.template("conv2d"), dict(N=1, C=4, H=8, W=8, K=8, R=3, S=3, G=1, **_WIN))
    assert flops(conv) == 2 * 8 * 8 * 8 * 4 * 3 * 3  # the padding select counts nothing


# ----------------------------------------------------------------------------------------------------------------
# simplify is sound on integer index arithmetic: random expressions agree at every point of random ranges

import itertools  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VARS = ("i", "j", "k")
_CMPS = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__, "==": int.__eq__, "!=": int.__ne__}


def _eval(e: ast.Expr, env: dict[str, int]) -> int | bool:
    if isinstance(e, (ast.IntLit, ast.BoolLit)):
        return e.value
    if isinstance(e, ast.Var):
        return env[e.name]
    if isinstance(e, ast.Neg):
        return -_eval(e.operand, env)
    if isinstance(e, ast.BinOp):
        a, b = _eval(e.lhs, env), _eval(e.rhs, env)
        return {"+": a + b, "-": a - b, "*": a * b}[e.op] if e.op in "+-*" else (a // b if e.op == "//" else a % b)
    if isinstance(e, ast.Compare):
        vals = [int(_eval(o, env)) for o in e.operands]
        return all(_CMPS[op](x, y) for op, x, y in zip(e.ops, vals, vals[1:]))
    if isinstance(e, ast.BoolOp):
        vals = [bool(_eval(o, env)) for o in e.operands]
        return all(vals) if e.op == "and" else any(vals)
    if isinstance(e, ast.Not):
        return not _eval(e.operand, env)
    if isinstance(e, ast.IfElse):
        return _eval(e.then, env) if _eval(e.cond, env) else _eval(e.otherwise, env)
    raise TypeError(e)


_ints = st.recursive(
    st.one_of(st.integers(-20, 20).map(ast.IntLit), st.sampled_from(_VARS).map(ast.Var)),
    lambda c: st.one_of(
        st.builds(ast.BinOp, st.sampled_from(["+", "-", "*"]), c, c),
        st.builds(ast.BinOp, st.sampled_from(["//", "%"]), c, st.integers(1, 17).map(ast.IntLit)),
        st.builds(ast.Neg, c),
        # the blocked-layout shape q * B + r
        st.builds(lambda q, r, b: ast.BinOp("+", ast.BinOp("*", q, ast.IntLit(b)), r), c, c, st.integers(1, 16)),
    ),
    max_leaves=8,
)
_conds = st.recursive(
    st.integers(1, 3).flatmap(lambda n: st.builds(
        ast.Compare, st.lists(st.sampled_from(sorted(_CMPS)), min_size=n, max_size=n).map(tuple),
        st.lists(_ints, min_size=n + 1, max_size=n + 1).map(tuple))),
    lambda c: st.one_of(st.builds(ast.BoolOp, st.sampled_from(["and", "or"]), st.lists(c, min_size=2, max_size=3).map(tuple)),
                        st.builds(ast.Not, c)),
    max_leaves=4,
)
_ranges = st.fixed_dictionaries(
    {v: st.tuples(st.integers(-5, 5), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1])) for v in _VARS})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_ints, _conds, st.builds(ast.IfElse, _conds, _ints, _ints)), _ranges)
def test_simplify_preserves_integer_semantics(e, ranges):
    out = simplify(e, ranges)
    for point in itertools.product(*[range(lo, hi + 1) for lo, hi in ranges.values()]):
        env = dict(zip(ranges, point))
        assert int(_eval(out, env)) == int(_eval(e, env)), (printer.expr(e), printer.expr(out), env)
