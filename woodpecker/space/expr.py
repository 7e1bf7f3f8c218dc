"""A tiny, safe evaluator for constraint expressions in search space files (Python syntax, no calls but
ceil/min/max, no attribute access): `tile_x * tile_y * ceil(tile_ko / lanes) <= 14`."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from typing import Any

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Eq: operator.eq,
        ast.NotEq: operator.ne}
_FUNCS = {"ceil": math.ceil, "min": min, "max": max}


class ExprError(ValueError):
    pass


def compile_expr(text: str) -> ast.Expression:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise ExprError(f"cannot parse {text!r}: {err.msg}") from None
    for node in ast.walk(tree):
        allowed = (ast.Expression, ast.BinOp, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call,
                   ast.Load, ast.And, ast.Or, ast.Not, ast.USub, *_BIN, *_CMP)
        if not isinstance(node, allowed):
            raise ExprError(f"{type(node).__name__} is not allowed in {text!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS):
            raise ExprError(f"only {sorted(_FUNCS)} may be called in {text!r}")
    return tree


def evaluate(tree: ast.Expression, env: Mapping[str, Any]) -> Any:
    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            if n.id not in env:
                raise ExprError(f"unknown name {n.id!r}")
            return env[n.id]
        if isinstance(n, ast.BinOp):
            return _BIN[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else (not v)
        if isinstance(n, ast.BoolOp):
            values = [ev(v) for v in n.values]
            return all(values) if isinstance(n.op, ast.And) else any(values)
        if isinstance(n, ast.Compare):
            left = ev(n.left)
            for op, right_node in zip(n.ops, n.comparators):
                right = ev(right_node)
                if not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(n, ast.Call):
            return _FUNCS[n.func.id](*[ev(a) for a in n.args])  # type: ignore[attr-defined]
        raise ExprError(f"cannot evaluate {type(n).__name__}")

    return ev(tree)
