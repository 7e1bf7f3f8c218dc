"""DSL printer: ast -> canonical source text. `parse(print(x)) == x` for every well-formed AST (tested)."""

from __future__ import annotations

import re

from woodpecker.dsl import ast

# Binding strength, loosest first; mirrors the grammar's rule nesting.
P_IF, P_OR, P_AND, P_NOT, P_CMP, P_SUM, P_PROD, P_UNARY, P_POW, P_ATOM = range(10)
_BIN_PREC = {"+": P_SUM, "-": P_SUM, "*": P_PROD, "/": P_PROD, "//": P_PROD, "%": P_PROD, "**": P_POW}
MAX_LINE = 110


def _float(value: float) -> str:
    if value == float("inf"):
        return "inf"
    if value == float("-inf"):
        return "-inf"
    text = repr(float(value))
    return text if any(c in text for c in ".e") else text + ".0"


def expr(e: ast.Expr, need: int = P_IF) -> str:
    text, prec = _expr(e)
    return f"({text})" if prec < need else text


def _expr(e: ast.Expr) -> tuple[str, int]:
    if isinstance(e, ast.IntLit):
        return str(e.value), (P_UNARY if e.value < 0 else P_ATOM)
    if isinstance(e, ast.FloatLit):
        text = _float(e.value)
        return text, (P_UNARY if text.startswith("-") else P_ATOM)  # -0.0 prints with its sign, like -1.0
    if isinstance(e, ast.BoolLit):
        return ("true" if e.value else "false"), P_ATOM
    if isinstance(e, ast.Var):
        return e.name, P_ATOM
    if isinstance(e, ast.Access):
        return f"{e.tensor}[{', '.join(expr(i) for i in e.indices)}]", P_ATOM
    if isinstance(e, ast.Call):
        return f"{ast.DTYPE_NAMES.get(e.func, e.func)}({', '.join(expr(a) for a in e.args)})", P_ATOM
    if isinstance(e, ast.Reduce):
        axes = ", ".join(axis(a) for a in e.axes)
        return f"{e.reducer}({expr(e.body)} for {axes})", P_ATOM
    if isinstance(e, ast.BinOp):
        prec = _BIN_PREC[e.op]
        if e.op == "**":
            return f"{expr(e.lhs, P_ATOM)} ** {expr(e.rhs, P_UNARY)}", P_POW
        return f"{expr(e.lhs, prec)} {e.op} {expr(e.rhs, prec + 1)}", prec
    if isinstance(e, ast.Neg):
        operand = expr(e.operand, P_UNARY)
        # "-(-x)" and "-(-1)" must not print as "--x"; "-(1)" must not print as the literal "-1"
        if operand.startswith("-") or isinstance(e.operand, (ast.IntLit, ast.FloatLit)):
            operand = f"({operand})"
        return f"-{operand}", P_UNARY
    if isinstance(e, ast.Compare):
        parts = [expr(e.operands[0], P_SUM)]
        for op, operand in zip(e.ops, e.operands[1:]):
            parts += [op, expr(operand, P_SUM)]
        return " ".join(parts), P_CMP
    if isinstance(e, ast.BoolOp):
        inner = P_AND if e.op == "or" else P_NOT
        return f" {e.op} ".join(expr(o, inner) for o in e.operands), (P_OR if e.op == "or" else P_AND)
    if isinstance(e, ast.Not):
        return f"not {expr(e.operand, P_NOT)}", P_NOT
    if isinstance(e, ast.IfElse):
        return f"{expr(e.then, P_OR)} if {expr(e.cond, P_OR)} else {expr(e.otherwise, P_IF)}", P_IF
    raise TypeError(f"not a DSL expression: {e!r}")


def axis(a: ast.Axis) -> str:
    return f"{a.name} < {expr(a.extent, P_SUM)}"


def param(p: ast.TensorParam) -> str:
    return f"{p.name}: {ast.DTYPE_NAMES[p.dtype]}[{', '.join(expr(d, P_SUM) for d in p.shape)}]"


def stmt(s: ast.Stmt) -> str:
    if isinstance(s, ast.Let):
        return f"let {s.name} = {expr(s.value)}"
    return f"{s.name}[{', '.join(axis(a) for a in s.axes)}] = {expr(s.value)}"


# Words the grammar's NAME terminal never matches: an attribute value spelled like one must be quoted.
_RESERVED = {"fn", "kernel", "let", "for", "if", "else", "and", "or", "not", "inf", "true", "false", *ast.DTYPES}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _attribute(a: ast.Attribute) -> str:
    def value(v: str | int) -> str:
        if isinstance(v, int):
            return str(v)
        return v if _NAME.fullmatch(v) and v not in _RESERVED else f'"{v}"'

    return f"@{a.name}({', '.join(value(v) for v in a.values)})"


def kernel(k: ast.Kernel) -> str:
    lines = [_attribute(a) for a in k.attributes]
    template = f"<{', '.join(k.template_params)}>" if k.template_params else ""
    head = f"kernel {k.name}{template}("
    params = [param(p) for p in k.params]
    one_line = head + ", ".join(params) + f") -> {k.output} {{"
    if len(one_line) <= MAX_LINE:
        lines.append(one_line)
    else:
        lines.append(head)
        # The grammar has no trailing comma after the last parameter: print separators only between them.
        lines.extend(f"    {p}{',' if i < len(params) - 1 else ''}" for i, p in enumerate(params))
        lines.append(f") -> {k.output} {{")
    lines.extend(f"  {stmt(s)}" for s in k.body)
    lines.append("}")
    return "\n".join(lines)


def fn(f: ast.FnDef) -> str:
    return f"fn {f.name}({', '.join(f.params)}) = {expr(f.body)}"


def module(m: ast.Module) -> str:
    parts = [fn(f) for f in m.fns]
    if parts:
        parts = ["\n".join(parts)]
    parts += [kernel(k) for k in m.kernels]
    return "\n\n".join(parts) + "\n"
