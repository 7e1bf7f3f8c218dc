"""DSL parser: source text -> ast.Module, through a Lark LALR(1) grammar (grammar.lark beside this file).

Syntax errors and semantic errors carry the line and column of the offending token.
"""

from __future__ import annotations

import functools
import pathlib

import lark
from lark import Token, Transformer, v_args

from woodpecker.dsl import ast
from woodpecker.errors import DSLError

_GRAMMAR = pathlib.Path(__file__).with_name("grammar.lark")


@functools.lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    return lark.Lark(_GRAMMAR.read_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _pos(meta_or_token) -> ast.Pos:
    line = getattr(meta_or_token, "line", None)
    column = getattr(meta_or_token, "column", None)
    return (line or 0, column or 0)


def _opt(items):
    return tuple(x for x in items if x is not None)


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self) -> None:
        super().__init__()
        # Nodes written in parentheses (id -> node, which also keeps them alive while ids are compared): `-(1)`
        # stays a negation and `(a and b) and c` stays nested, so that every printed AST parses back to itself.
        self._parens: dict[int, ast.Expr] = {}

    def paren(self, meta, items):
        self._parens[id(items[0])] = items[0]
        return items[0]

    def _parenthesized(self, e) -> bool:
        return id(e) in self._parens

    def start(self, meta, items):
        fns = tuple(i for i in items if isinstance(i, ast.FnDef))
        kernels = tuple(i for i in items if isinstance(i, ast.Kernel))
        return ast.Module(fns, kernels)

    def fn_def(self, meta, items):
        name, *rest = items
        body = rest[-1]
        params = tuple(str(p) for p in rest[:-1] if p is not None)
        return ast.FnDef(str(name), params, body, _pos(meta))

    def kernel_def(self, meta, items):
        attrs = tuple(i for i in items if isinstance(i, ast.Attribute))
        rest = [i for i in items if not isinstance(i, ast.Attribute)]
        name = rest[0]
        idx = 1
        template: tuple[str, ...] = ()
        if isinstance(rest[idx], tuple) and all(isinstance(t, str) for t in rest[idx]):
            template = rest[idx]
            idx += 1
        params = []
        while idx < len(rest) and (rest[idx] is None or isinstance(rest[idx], ast.TensorParam)):
            if rest[idx] is not None:
                params.append(rest[idx])
            idx += 1
        output = str(rest[idx])
        body = tuple(rest[idx + 1 :])
        # The kernel's position is its name, not the start of its attributes: errors about the kernel as a whole
        # (an output it never defines, a duplicate name) point at the line that says `kernel <name>`.
        return ast.Kernel(str(name), tuple(params), output, body, template, attrs, _pos(name))

    def attribute(self, meta, items):
        return ast.Attribute(str(items[0]), _opt(items[1:]), _pos(meta))

    def attr_name(self, meta, items):
        return str(items[0])

    def attr_int(self, meta, items):
        return int(items[0])

    def attr_string(self, meta, items):
        return str(items[0])[1:-1]

    def template_params(self, meta, items):
        return tuple(str(t) for t in items)

    def param(self, meta, items):
        name, dtype, *shape = items
        return ast.TensorParam(str(name), ast.DTYPES[str(dtype)], _opt(shape), _pos(meta))

    def let_stmt(self, meta, items):
        return ast.Let(str(items[0]), items[1], _pos(meta))

    def compute_stmt(self, meta, items):
        name, *axes, value = items
        return ast.Compute(str(name), _opt(axes), value, _pos(meta))

    def axis(self, meta, items):
        return ast.Axis(str(items[0]), items[1], _pos(items[0]))

    def if_else(self, meta, items):
        then, cond, otherwise = items
        return ast.IfElse(cond, then, otherwise, _pos(meta))

    def or_op(self, meta, items):
        return _flatten_bool("or", items, meta, self._parens)

    def and_op(self, meta, items):
        return _flatten_bool("and", items, meta, self._parens)

    def not_op(self, meta, items):
        return ast.Not(items[0], _pos(meta))

    def compare(self, meta, items):
        operands = tuple(items[0::2])
        ops = tuple(str(t) for t in items[1::2])
        return ast.Compare(ops, operands, _pos(meta))

    def binop(self, meta, items):
        lhs, op, rhs = items
        return ast.BinOp(str(op), lhs, rhs, _pos(meta))

    def neg(self, meta, items):
        operand = items[0]
        # A minus sign on a literal is part of the literal, so that printing a negative constant round-trips;
        # a parenthesized literal (`-(1)`, `-(-1)`) stays a negation.
        if self._parenthesized(operand):
            return ast.Neg(operand, _pos(meta))
        if isinstance(operand, ast.IntLit):
            return ast.IntLit(-operand.value, _pos(meta))
        if isinstance(operand, ast.FloatLit):
            return ast.FloatLit(-operand.value, _pos(meta))
        return ast.Neg(operand, _pos(meta))

    def int_lit(self, meta, items):
        return ast.IntLit(int(items[0]), _pos(items[0]))

    def float_lit(self, meta, items):
        return ast.FloatLit(float(items[0]), _pos(items[0]))

    def inf_lit(self, meta, items):
        return ast.FloatLit(float("inf"), _pos(meta))

    def true_lit(self, meta, items):
        return ast.BoolLit(True, _pos(meta))

    def false_lit(self, meta, items):
        return ast.BoolLit(False, _pos(meta))

    def var(self, meta, items):
        return ast.Var(str(items[0]), _pos(items[0]))

    def access(self, meta, items):
        return ast.Access(str(items[0]), _opt(items[1:]), _pos(items[0]))

    def call(self, meta, items):
        return ast.Call(str(items[0]), _opt(items[1:]), _pos(items[0]))

    def cast(self, meta, items):
        return ast.Call(str(items[0]), (items[1],), _pos(items[0]))

    def reduce(self, meta, items):
        name, body, *axes = items
        if str(name) not in ast.REDUCERS:
            raise DSLError(f"unknown reduction {name!s}; expected one of {', '.join(ast.REDUCERS)}",
                           name.line, name.column)
        return ast.Reduce(str(name), body, tuple(axes), _pos(name))


def _flatten_bool(op: str, items, meta, parens) -> ast.BoolOp:
    operands = []
    for item in items:
        # `a and b and c` is one BoolOp; `(a and b) and c` keeps the parenthesized one as an operand
        if isinstance(item, ast.BoolOp) and item.op == op and id(item) not in parens:
            operands.extend(item.operands)
        else:
            operands.append(item)
    return ast.BoolOp(op, tuple(operands), _pos(meta))


def parse(source: str, filename: str = "<dsl>") -> ast.Module:
    """Parse DSL source into a Module. Raises DSLError with the line and column on any syntax error."""
    try:
        tree = _lark().parse(source)
        return _ToAst().transform(tree)
    except lark.exceptions.UnexpectedToken as err:
        tok: Token = err.token
        shown = "end of input" if tok.type == "$END" else repr(str(tok))
        expected = sorted(_describe(t) for t in err.expected)[:8]
        raise DSLError(f"unexpected {shown}; expected {', '.join(expected)}", err.line, err.column, filename) from None
    except lark.exceptions.UnexpectedCharacters as err:
        raise DSLError(f"unexpected character {source[err.pos_in_stream]!r}", err.line, err.column, filename) from None
    except lark.exceptions.UnexpectedEOF as err:
        raise DSLError("unexpected end of input", err.line if err.line > 0 else None, err.column, filename) from None
    except lark.exceptions.VisitError as err:
        if isinstance(err.orig_exc, DSLError):
            e = err.orig_exc
            raise DSLError(str(e).split(": ", 1)[-1], e.line, e.column, filename) from None
        raise


_TOKEN_NAMES = {
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','",
    "COLON": "':'", "EQUAL": "'='", "LESSTHAN": "'<'", "MORETHAN": "'>'", "AT": "'@'", "__ANON_0": "'->'",
}


def _describe(token_type: str) -> str:
    if token_type in _TOKEN_NAMES:
        return _TOKEN_NAMES[token_type]
    if token_type.startswith("__") or token_type.isupper() and len(token_type) <= 6 and token_type not in ("NAME", "INT", "FLOAT", "DTYPE"):
        return token_type.lower()
    return token_type.lower()


def parse_kernel(source: str, filename: str = "<dsl>") -> ast.Kernel:
    module = parse(source, filename)
    if len(module.kernels) != 1:
        raise DSLError(f"expected exactly one kernel, found {len(module.kernels)}", None, None, filename)
    return module.kernels[0]
