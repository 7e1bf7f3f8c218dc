"""DSL parser and printer: round trips (library files, hand-written programs, random ASTs) and error positions."""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from woodpecker.data import data_dir
from woodpecker.dsl import ast, printer
from woodpecker.dsl.check import check_kernel
from woodpecker.dsl.parser import parse, parse_kernel
from woodpecker.errors import DSLError

LIBRARY_FILES = sorted(data_dir("kernels").glob("*.wpl"))


def test_library_files_exist():
    names = {f.name for f in LIBRARY_FILES}
    assert {"conv2d.wpl", "dense.wpl", "elementwise.wpl", "norm.wpl", "pool.wpl"} <= names


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.name)
def test_library_file_round_trip(path: pathlib.Path):
    module = parse(path.read_text(), path.name)
    assert module.kernels or module.fns
    text = printer.module(module)
    assert parse(text) == module
    # the printed text is canonical: printing what it parses to gives it back
    assert printer.module(parse(text)) == text


# Canonical programs (exactly as the printer writes them) covering every construct of the grammar.
CANONICAL = [
    # fns: builtins, casts, ternaries, boolean operators, literals
    "fn relu(x) = max(x, 0.0)\n",
    "fn f(x, y) = x ** y ** 2 + -x // 3 % 2 - (x - y) * (y + 1)\n",
    "fn g(x) = f32(x) + f64(x) * i32(x) - i64(x) / u8(x) + i8(bool(x))\n",
    "fn h(x, lo, hi) = lo if x < lo else hi if x > hi else x\n",
    "fn b(x, y) = x if not x < y and (y == 1 or y != 2) else -1.5e-07\n",
    "fn c(x) = (x if x > 0.0 else 0.0) if 0 <= x < 10 <= 20 else inf\n",
    "fn d(x) = -inf if not not x >= 3 else -(-x)\n",
    "fn e(x) = (-2) ** x + x ** -2 + -x ** 2 + (-x) ** 2\n",
    "fn t(x) = true and false or x\n",
    "fn n(x) = (x and x) and x or (x or x)\n",
    "fn p(x) = -(1) + -(-1) + -(2.5) + -1 + -2.5\n",
    "fn z() = 1e+20 + 1e-05 + 0.0\n",
    "fn names(bool_mask, i8x, f32acc, info, truth, notes, if_, fn_) = bool_mask + i8x + f32acc + info + truth + notes + if_ + fn_\n",
    # kernels: attributes, templates, lets, reductions, chained comparisons
    "@family(conv2d)\n@tile(16, \"a b\", x)\n@flag()\nkernel k<N, M>(X: f32[N, M], Wt: i64[M], S: bool[]) -> Y {\n"
    "  let H = N // 2 + M % 3\n"
    "  let E = 1e-05\n"
    "  T[i < H, j < M * 2 - 1] = X[i * 2, j // 2] if 0 <= j - 1 < M and S[] else -1.0\n"
    "  U[i < H] = sum(T[i, j] * f32(Wt[j % M]) for j < M * 2 - 1)\n"
    "  V[i < H] = max(T[i, j] for j < 3)\n"
    "  W2[i < H] = min(T[i, j] + E for j < 2, q < 1)\n"
    "  Y[i < H] = U[i] + V[i] - W2[i]\n"
    "}\n",
    "fn sq(x) = x * x\n\nkernel a(X: f32[4]) -> Y {\n  Y[i < 4] = sq(X[i])\n}\n\nkernel b(X: f32[4]) -> Z {\n"
    "  Z[i < 4] = X[3 - i]\n}\n",
    "kernel scalar() -> Y {\n  Y[] = 1.0\n}\n",
    # a parameter list too long for one line is printed one parameter per line
    "kernel long_params(\n    Alpha: f32[1024, 1024, 1024],\n    Beta: f32[1024, 1024, 1024],\n"
    "    Gamma: f32[1024, 1024, 1024],\n    Delta: f32[1024, 1024, 1024],\n) -> Y {\n"
    "  Y[i < 2] = Alpha[i, 0, 0]\n}\n".replace(",\n) -> Y", "\n) -> Y"),
]


@pytest.mark.parametrize("text", CANONICAL, ids=range(len(CANONICAL)))
def test_canonical_text_round_trip(text: str):
    module = parse(text)
    assert printer.module(module) == text
    assert parse(printer.module(module)) == module


def _body(text: str) -> ast.Expr:
    return parse(f"fn f(x, y, z) = {text}").fns[0].body


def test_parse_structure_of_each_construct():
    X, Y, Z = ast.Var("x"), ast.Var("y"), ast.Var("z")
    assert _body("0 <= x < 10") == ast.Compare(("<=", "<"), (ast.IntLit(0), X, ast.IntLit(10)))
    assert _body("-3") == ast.IntLit(-3)
    assert _body("-2.5") == ast.FloatLit(-2.5)
    assert _body("-x") == ast.Neg(X)
    assert _body("x ** y ** z") == ast.BinOp("**", X, ast.BinOp("**", Y, Z))  # right associative
    assert _body("-x ** 2") == ast.Neg(ast.BinOp("**", X, ast.IntLit(2)))  # ** binds tighter than unary minus
    assert _body("x - y - z") == ast.BinOp("-", ast.BinOp("-", X, Y), Z)  # left associative
    assert _body("x // y % z") == ast.BinOp("%", ast.BinOp("//", X, Y), Z)
    assert _body("x + y * z") == ast.BinOp("+", X, ast.BinOp("*", Y, Z))
    assert _body("x if y else z") == ast.IfElse(Y, X, Z)
    assert _body("not x and y or z") == ast.BoolOp("or", (ast.BoolOp("and", (ast.Not(X), Y)), Z))
    assert _body("x and y and z") == ast.BoolOp("and", (X, Y, Z))
    assert _body("f32(x)") == ast.Call("f32", (X,))
    assert _body("max(x, y)") == ast.Call("max", (X, Y))
    assert _body("inf") == ast.FloatLit(float("inf"))
    assert _body("true") == ast.BoolLit(True)
    assert _body("sum(x for i < 3, j < y)") == ast.Reduce(
        "sum", X, (ast.Axis("i", ast.IntLit(3)), ast.Axis("j", Y))
    )
    assert _body("T[x, 0]") == ast.Access("T", (X, ast.IntLit(0)))


def test_kernel_structure():
    k = parse_kernel(CANONICAL[13])
    assert k.name == "k" and k.template_params == ("N", "M") and k.output == "Y"
    assert [p.name for p in k.params] == ["X", "Wt", "S"]
    assert [p.dtype for p in k.params] == ["float32", "int64", "bool"]
    assert k.params[2].shape == ()
    assert k.attribute("family") == "conv2d"
    assert k.attributes[1].values == (16, "a b", "x")
    assert k.attribute("flag") is True
    assert k.attribute("missing", 7) == 7
    assert isinstance(k.body[0], ast.Let) and isinstance(k.body[2], ast.Compute)
    assert [s.name for s in k.computes] == ["T", "U", "V", "W2", "Y"]
    assert k.statement("U").value.reducer == "sum"
    check_kernel(k, {})  # and it is semantically valid


def test_positions_are_recorded_and_ignored_by_equality():
    k = parse_kernel("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i] + 1.0\n}\n")
    y = k.statement("Y")
    assert y.pos == (2, 3)
    assert y.value.lhs.pos == (2, 14)
    moved = parse_kernel("\n\nkernel   k(X: f32[4]) -> Y {\n    Y[i < 4] =    X[i] + 1.0\n}\n")
    assert moved == k and moved.statement("Y").pos != y.pos


def test_printer_attribute_values_that_are_not_names_are_quoted():
    k = ast.Kernel("k", (), "Y", (ast.Compute("Y", (), ast.FloatLit(1.0)),),
                   attributes=(ast.Attribute("a", ("if", "f32", "two words", "x_1", 3)),))
    text = printer.kernel(k)
    assert '@a("if", "f32", "two words", x_1, 3)' in text
    assert parse_kernel(text) == k


# ----------------------------------------------------------------------------------------------------------------
# random ASTs

_RESERVED = {"fn", "kernel", "let", "for", "if", "else", "and", "or", "not", "inf", "true", "false", *ast.DTYPES}
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in _RESERVED)
int_lits = st.integers(-(2**40), 2**40).map(ast.IntLit)
float_lits = st.floats(allow_nan=False, allow_infinity=True).map(ast.FloatLit)
leaves = st.one_of(int_lits, float_lits, st.booleans().map(ast.BoolLit), names.map(ast.Var))
CMP = ["<", "<=", ">", ">=", "==", "!="]


def _extend(children):
    small = st.lists(children, min_size=0, max_size=3).map(tuple)
    axes = st.lists(st.builds(ast.Axis, names, children), min_size=1, max_size=2).map(tuple)
    return st.one_of(
        st.builds(ast.Access, names, small),
        st.builds(ast.Call, names, small),
        st.builds(ast.Call, st.sampled_from(sorted(ast.DTYPES)), children.map(lambda c: (c,))),
        st.builds(ast.BinOp, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), children, children),
        st.builds(ast.Neg, children),
        st.integers(1, 3).flatmap(
            lambda n: st.builds(ast.Compare, st.lists(st.sampled_from(CMP), min_size=n, max_size=n).map(tuple),
                                st.lists(children, min_size=n + 1, max_size=n + 1).map(tuple))
        ),
        st.builds(ast.BoolOp, st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3).map(tuple)),
        st.builds(ast.Not, children),
        st.builds(ast.IfElse, children, children, children),
        st.builds(ast.Reduce, st.sampled_from(ast.REDUCERS), children, axes),
    )


expressions = st.recursive(leaves, _extend, max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_random_expression_round_trip(e: ast.Expr):
    fn = ast.FnDef("f", (), e)
    text = printer.fn(fn)
    assert parse(text).fns[0] == fn, text
    assert printer.fn(parse(text).fns[0]) == text


@settings(max_examples=50, deadline=None)
@given(st.lists(st.builds(ast.Axis, names, expressions), max_size=3).map(tuple), expressions,
       st.lists(st.builds(ast.Attribute, names, st.lists(st.one_of(st.integers(0, 99), names), max_size=2).map(tuple)),
                max_size=2).map(tuple))
def test_random_kernel_round_trip(axes, value, attributes):
    k = ast.Kernel("k", (ast.TensorParam("X", "float32", tuple(a.extent for a in axes)),), "Y",
                   (ast.Let("L", value), ast.Compute("Y", axes, value)), ("N",), attributes)
    m = ast.Module((), (k,))
    text = printer.module(m)
    assert parse(text) == m, text
    assert printer.module(parse(text)) == text


# ----------------------------------------------------------------------------------------------------------------
# errors carry the position of the offending token


def _error(source: str, fns=None) -> DSLError:
    with pytest.raises(DSLError) as info:
        module = parse(source, "t.wpl")
        for k in module.kernels:
            check_kernel(k, fns or {f.name: f for f in module.fns}, "t.wpl")
    return info.value


@pytest.mark.parametrize(
    "source, line, column, words",
    [
        # syntax: an expression ends in an operator
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i] +\n}\n", 3, 1, "unexpected '}'"),
        # syntax: a character outside the language
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i] $ 2\n}\n", 2, 19, "unexpected character '$'"),
        # syntax: a misspelt keyword leaves a name where `kernel` was expected
        ("fn f(x) = x\nkernal k(X: f32[4]) -> Y {\n}\n", 2, 1, "unexpected 'kernal'"),
        # semantic errors
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i] + Z[i]\n}\n", 2, 21, "unknown tensor Z"),
        ("kernel k(X: f32[4, 4]) -> Y {\n  Y[i < 4] = 2.0 * X[i]\n}\n", 2, 20, "indexed with 1 indices"),
        ("kernel k(X: f32[4]) -> Y {\n  T[i < 4] = X[i]\n  Y[i < 4] = T[i, 0]\n}\n", 3, 14, "rank 1"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = exp(foo(X[i]))\n}\n", 2, 18, "unknown function foo"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = max(X[i])\n}\n", 2, 14, "max takes 2 argument(s), got 1"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 1] = 1.0 + sum(X[j] for j < 4)\n}\n", 2, 20, "reduction must be"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 1] = exp(max(X[j] for j < 4))\n}\n", 2, 18, "reduction must be"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 1] = prod(X[j] for j < 4)\n}\n", 2, 14, "unknown reduction prod"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[j]\n}\n", 2, 16, "unknown name j"),
        ("@family(x)\nkernel k(X: f32[4]) -> Y {\n  Z[i < 4] = X[i]\n}\n", 2, 8, "never defines its output Y"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i]\n  Z[i < 4] = Y[i]\n}\n", 1, 8, "must be the last"),
        ("kernel k(X: f32[4]) -> Y {\n  Y[i < 4, i < 2] = X[i]\n}\n", 2, 12, "declared twice"),
        ("kernel k(X: f32[4]) -> Y {\n  X[i < 4] = 1.0\n  Y[i < 4] = X[i]\n}\n", 2, 3, "defined twice"),
    ],
)
def test_error_positions(source, line, column, words):
    err = _error(source)
    assert words in str(err)
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err).startswith(f"t.wpl:{line}:{column}: ")
    assert "\n" not in str(err)


def test_unexpected_end_of_input():
    err = _error("kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i]\n")
    assert "end of input" in str(err) and err.line == 2


def test_parse_kernel_needs_exactly_one_kernel():
    with pytest.raises(DSLError, match="exactly one kernel, found 2"):
        parse_kernel("kernel a() -> Y {\n  Y[] = 1.0\n}\nkernel b() -> Y {\n  Y[] = 1.0\n}\n")
