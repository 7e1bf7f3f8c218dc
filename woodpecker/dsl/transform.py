"""AST rewrites: substitution, range-aware simplification, template instantiation, identity-copy elimination.

Instantiating a template binds its `<params>` to numbers, evaluates its `let`s and simplifies every expression
with the index ranges known, so that the program a person reads has no dead padding checks, no `k // 64 * 64`
for an ungrouped convolution and no copy statements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from woodpecker.dsl import ast
from woodpecker.errors import DSLError

Range = tuple[int, int]  # inclusive integer bounds
Ranges = Mapping[str, Range]


# ----------------------------------------------------------------------------------------------------------------
# generic rebuild


def map_children(e: ast.Expr, fn) -> ast.Expr:
    """Rebuild `e` with `fn` applied to each direct sub-expression."""
    if isinstance(e, ast.Access):
        return dataclasses.replace(e, indices=tuple(fn(i) for i in e.indices))
    if isinstance(e, ast.Call):
        return dataclasses.replace(e, args=tuple(fn(a) for a in e.args))
    if isinstance(e, ast.BinOp):
        return dataclasses.replace(e, lhs=fn(e.lhs), rhs=fn(e.rhs))
    if isinstance(e, ast.Neg):
        return dataclasses.replace(e, operand=fn(e.operand))
    if isinstance(e, ast.Not):
        return dataclasses.replace(e, operand=fn(e.operand))
    if isinstance(e, (ast.Compare, ast.BoolOp)):
        return dataclasses.replace(e, operands=tuple(fn(o) for o in e.operands))
    if isinstance(e, ast.IfElse):
        return dataclasses.replace(e, cond=fn(e.cond), then=fn(e.then), otherwise=fn(e.otherwise))
    if isinstance(e, ast.Reduce):
        axes = tuple(dataclasses.replace(a, extent=fn(a.extent)) for a in e.axes)
        return dataclasses.replace(e, body=fn(e.body), axes=axes)
    return e


def substitute(e: ast.Expr, mapping: Mapping[str, ast.Expr]) -> ast.Expr:
    """Replace variables (and, for Access, tensor names mapped to a Var) by expressions."""
    if isinstance(e, ast.Var):
        return mapping.get(e.name, e)
    if isinstance(e, ast.Reduce):
        inner = {k: v for k, v in mapping.items() if k not in {a.name for a in e.axes}}
        axes = tuple(dataclasses.replace(a, extent=substitute(a.extent, mapping)) for a in e.axes)
        return dataclasses.replace(e, body=substitute(e.body, inner), axes=axes)
    return map_children(e, lambda c: substitute(c, mapping))


def rename_tensors(e: ast.Expr, mapping: Mapping[str, str]) -> ast.Expr:
    if isinstance(e, ast.Access) and e.tensor in mapping:
        e = dataclasses.replace(e, tensor=mapping[e.tensor])
    return map_children(e, lambda c: rename_tensors(c, mapping))


def literal(value: int | float | bool) -> ast.Expr:
    if isinstance(value, bool):
        return ast.BoolLit(value)
    if isinstance(value, int):
        return ast.IntLit(value)
    return ast.FloatLit(float(value))


# ----------------------------------------------------------------------------------------------------------------
# integer ranges


def int_range(e: ast.Expr, ranges: Ranges) -> Range | None:
    """Inclusive bounds of an integer expression, or None when unknown or not integer."""
    if isinstance(e, ast.IntLit):
        return (e.value, e.value)
    if isinstance(e, ast.Var):
        return ranges.get(e.name)
    if isinstance(e, ast.Neg):
        r = int_range(e.operand, ranges)
        return None if r is None else (-r[1], -r[0])
    if isinstance(e, ast.Call) and e.func in ("max", "min") and len(e.args) == 2:
        a, b = int_range(e.args[0], ranges), int_range(e.args[1], ranges)
        if a is None or b is None:
            return None
        pick = max if e.func == "max" else min
        return (pick(a[0], b[0]), pick(a[1], b[1]))
    if isinstance(e, ast.BinOp):
        a, b = int_range(e.lhs, ranges), int_range(e.rhs, ranges)
        if a is None or b is None:
            return None
        if e.op == "+":
            return (a[0] + b[0], a[1] + b[1])
        if e.op == "-":
            return (a[0] - b[1], a[1] - b[0])
        if e.op == "*":
            products = [x * y for x in a for y in b]
            return (min(products), max(products))
        if e.op == "//" and b[0] == b[1] and b[0] > 0:
            return (a[0] // b[0], a[1] // b[0])
        if e.op == "%" and b[0] == b[1] and b[0] > 0:
            if 0 <= a[0] and a[1] < b[0]:
                return a
            return (0, b[0] - 1)
    return None


_CMP = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "==": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
}


def _decide(op: str, a: Range, b: Range) -> bool | None:
    """Decide `a op b` for all values in the ranges, or None when it depends on the values."""
    if op == "<":
        return True if a[1] < b[0] else False if a[0] >= b[1] else None
    if op == "<=":
        return True if a[1] <= b[0] else False if a[0] > b[1] else None
    if op == ">":
        return _decide("<", b, a)
    if op == ">=":
        return _decide("<=", b, a)
    if op == "==":
        if a[0] == a[1] == b[0] == b[1]:
            return True
        return False if a[1] < b[0] or b[1] < a[0] else None
    if op == "!=":
        d = _decide("==", a, b)
        return None if d is None else not d
    return None


# ----------------------------------------------------------------------------------------------------------------
# simplification


def _num(e: ast.Expr) -> int | float | None:
    if isinstance(e, (ast.IntLit, ast.FloatLit)):
        return e.value
    return None


def _fold_binop(op: str, x: int | float, y: int | float, both_int: bool) -> int | float | None:
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "//" and both_int and y != 0:
            return x // y
        if op == "%" and both_int and y != 0:
            return x % y
        if op == "/" and not both_int and y != 0:
            return x / y
        if op == "**" and not both_int:
            return float(x) ** float(y)
    except (OverflowError, ZeroDivisionError):
        return None
    return None


def simplify(e: ast.Expr, ranges: Ranges = {}) -> ast.Expr:  # noqa: B006 (read-only default)
    """Constant-fold and apply range facts; keeps float arithmetic order except literal-only subtrees."""
    if isinstance(e, ast.Var):
        r = ranges.get(e.name)
        return ast.IntLit(r[0]) if r is not None and r[0] == r[1] else e
    if isinstance(e, ast.Reduce):
        inner = dict(ranges)
        axes = []
        for a in e.axes:
            extent = simplify(a.extent, ranges)
            if isinstance(extent, ast.IntLit):
                inner[a.name] = (0, extent.value - 1)
                if extent.value == 1:
                    continue  # a reduction over one element is no reduction (1x1 kernels)
            axes.append(dataclasses.replace(a, extent=extent))
        body = simplify(e.body, inner)
        if not axes:
            return body
        if isinstance(body, (ast.IntLit, ast.FloatLit)) and all(isinstance(a.extent, ast.IntLit) for a in axes):
            # A reduction of a constant (a window that is always full) is a constant.
            if e.reducer == "sum":
                return ast.FloatLit(float(body.value) * math.prod(a.extent.value for a in axes))  # type: ignore[union-attr]
            return body
        return dataclasses.replace(e, body=body, axes=tuple(axes))
    e = map_children(e, lambda c: simplify(c, ranges))
    if isinstance(e, ast.BinOp):
        return _simplify_binop(e, ranges)
    if isinstance(e, ast.Neg):
        n = _num(e.operand)
        if n is not None:
            return literal(-n) if not isinstance(e.operand, ast.FloatLit) else ast.FloatLit(-float(n))
        if isinstance(e.operand, ast.Neg):
            return e.operand.operand
        return e
    if isinstance(e, ast.Call) and e.func in ("max", "min") and len(e.args) == 2:
        ra, rb = int_range(e.args[0], ranges), int_range(e.args[1], ranges)
        if ra is not None and rb is not None:
            if ra[1] <= rb[0]:  # a <= b everywhere
                return e.args[1] if e.func == "max" else e.args[0]
            if rb[1] <= ra[0]:
                return e.args[0] if e.func == "max" else e.args[1]
    if isinstance(e, ast.Call) and e.func in ast.DTYPES and len(e.args) == 1:
        n = _num(e.args[0])
        dtype = ast.DTYPES[e.func]
        if n is not None and dtype.startswith("float"):
            lit: ast.Expr = ast.FloatLit(float(n))
        elif n is not None and dtype.startswith("int"):
            lit = ast.IntLit(int(n))
        else:
            return e
        # A bare literal is f32 or i32 where no operand types it: f64(0.1) and i64(2**40) keep their cast.
        return lit if dtype in ("float32", "int32") else dataclasses.replace(e, args=(lit,))
    if isinstance(e, ast.Compare):
        return _simplify_compare(e, ranges)
    if isinstance(e, ast.BoolOp):
        kept = []
        for o in e.operands:
            if isinstance(o, ast.BoolLit):
                if o.value == (e.op == "or"):
                    return ast.BoolLit(o.value)
                continue
            kept.append(o)
        if not kept:
            return ast.BoolLit(e.op == "and")
        return kept[0] if len(kept) == 1 else dataclasses.replace(e, operands=tuple(kept))
    if isinstance(e, ast.Not) and isinstance(e.operand, ast.BoolLit):
        return ast.BoolLit(not e.operand.value)
    if isinstance(e, ast.IfElse):
        if isinstance(e.cond, ast.BoolLit):
            return e.then if e.cond.value else e.otherwise
        if e.then == e.otherwise:
            return e.then
    return e


def _simplify_binop(e: ast.BinOp, ranges: Ranges) -> ast.Expr:
    x, y = _num(e.lhs), _num(e.rhs)
    both_int = isinstance(e.lhs, ast.IntLit) and isinstance(e.rhs, ast.IntLit)
    if x is not None and y is not None:
        v = _fold_binop(e.op, x, y, both_int)
        if v is not None:
            return ast.IntLit(int(v)) if both_int else ast.FloatLit(float(v))
    lhs_int = int_range(e.lhs, ranges) is not None or isinstance(e.lhs, ast.IntLit)
    # Identities below are applied to integer (index) arithmetic only: for floats, x * 0 is not 0 when x is inf.
    if e.op == "+":
        if y == 0 and isinstance(e.rhs, ast.IntLit):
            return e.lhs
        if x == 0 and isinstance(e.lhs, ast.IntLit):
            return e.rhs
        if isinstance(e.rhs, ast.IntLit) and e.rhs.value < 0:
            return ast.BinOp("-", e.lhs, ast.IntLit(-e.rhs.value), e.pos)
        # (a + c1) + c2 -> a + (c1 + c2)
        if isinstance(e.rhs, ast.IntLit) and isinstance(e.lhs, ast.BinOp) and e.lhs.op in "+-" \
                and isinstance(e.lhs.rhs, ast.IntLit):
            c = e.lhs.rhs.value if e.lhs.op == "+" else -e.lhs.rhs.value
            return _simplify_binop(ast.BinOp("+", e.lhs.lhs, ast.IntLit(c + e.rhs.value), e.pos), ranges)
    if e.op == "-":
        if y == 0 and isinstance(e.rhs, ast.IntLit):
            return e.lhs
        if isinstance(e.rhs, ast.IntLit) and e.rhs.value < 0:
            return _simplify_binop(ast.BinOp("+", e.lhs, ast.IntLit(-e.rhs.value), e.pos), ranges)
        if isinstance(e.rhs, ast.IntLit) and isinstance(e.lhs, ast.BinOp) and e.lhs.op in "+-" \
                and isinstance(e.lhs.rhs, ast.IntLit):
            c = e.lhs.rhs.value if e.lhs.op == "+" else -e.lhs.rhs.value
            return _simplify_binop(ast.BinOp("+", e.lhs.lhs, ast.IntLit(c - e.rhs.value), e.pos), ranges)
    if e.op == "*":
        if isinstance(e.rhs, ast.IntLit) and lhs_int:
            if e.rhs.value == 1:
                return e.lhs
            if e.rhs.value == 0:
                return ast.IntLit(0)
        if isinstance(e.lhs, ast.IntLit) and int_range(e.rhs, ranges) is not None:
            if e.lhs.value == 1:
                return e.rhs
            if e.lhs.value == 0:
                return ast.IntLit(0)
    if e.op in ("//", "%") and isinstance(e.rhs, ast.IntLit) and e.rhs.value > 0:
        split = _split_multiple(e.lhs, e.rhs.value, ranges)
        if split is not None:
            # (q * c + r) // c == q and (q * c + r) % c == r when 0 <= r < c: blocked-layout index arithmetic
            return split[0] if e.op == "//" else split[1]
        r = int_range(e.lhs, ranges)
        if e.rhs.value == 1 and r is not None:  # integers only: for a float x, x // 1 is floor(x), x % 1 its fraction
            return e.lhs if e.op == "//" else ast.IntLit(0)
        if r is not None and 0 <= r[0] and r[1] < e.rhs.value:
            return ast.IntLit(0) if e.op == "//" else e.lhs
    return e


def _split_multiple(e: ast.Expr, c: int, ranges: Ranges) -> tuple[ast.Expr, ast.Expr] | None:
    """Match `q * c + r` (either operand order) with 0 <= r < c; returns (q, r)."""
    if not (isinstance(e, ast.BinOp) and e.op == "+"):
        return None
    for prod, rest in ((e.lhs, e.rhs), (e.rhs, e.lhs)):
        if isinstance(prod, ast.BinOp) and prod.op == "*":
            for q, k in ((prod.lhs, prod.rhs), (prod.rhs, prod.lhs)):
                if isinstance(k, ast.IntLit) and k.value == c:
                    r = int_range(rest, ranges)
                    if r is not None and 0 <= r[0] and r[1] < c and int_range(q, ranges) is not None:
                        return q, rest
    return None


def _simplify_compare(e: ast.Compare, ranges: Ranges) -> ast.Expr:
    links = []
    for i, op in enumerate(e.ops):
        a, b = e.operands[i], e.operands[i + 1]
        ra, rb = int_range(a, ranges), int_range(b, ranges)
        if isinstance(a, (ast.IntLit, ast.FloatLit)) and isinstance(b, (ast.IntLit, ast.FloatLit)):  # e.g. 2 < 2.5
            decided: bool | None = _CMP[op](a.value, b.value)
        elif ra is not None and rb is not None:
            decided = _decide(op, ra, rb)
        else:
            decided = None
        if decided is False:
            return ast.BoolLit(False)
        links.append((op, a, b, decided))
    open_links = [(op, a, b) for op, a, b, d in links if d is None]
    if not open_links:
        return ast.BoolLit(True)
    if len(open_links) == len(links):
        return e
    # Rebuild maximal chains from the remaining links so that `0 <= h < 56` survives as one chain.
    parts: list[ast.Expr] = []
    chain_ops, chain_operands = [open_links[0][0]], [open_links[0][1], open_links[0][2]]
    for op, a, b in open_links[1:]:
        if a is chain_operands[-1]:
            chain_ops.append(op)
            chain_operands.append(b)
        else:
            parts.append(ast.Compare(tuple(chain_ops), tuple(chain_operands), e.pos))
            chain_ops, chain_operands = [op], [a, b]
    parts.append(ast.Compare(tuple(chain_ops), tuple(chain_operands), e.pos))
    return parts[0] if len(parts) == 1 else ast.BoolOp("and", tuple(parts), e.pos)


# ----------------------------------------------------------------------------------------------------------------
# kernels


def axis_ranges(axes: tuple[ast.Axis, ...]) -> dict[str, Range]:
    out = {}
    for a in axes:
        if isinstance(a.extent, ast.IntLit):
            out[a.name] = (0, a.extent.value - 1)
    return out


def _require_int(e: ast.Expr, what: str) -> int:
    if not isinstance(e, ast.IntLit):
        from woodpecker.dsl import printer

        raise DSLError(f"{what} must be a constant integer after instantiation, got {printer.expr(e)}", *e.pos)
    return e.value


def instantiate(
    kernel: ast.Kernel,
    bindings: Mapping[str, int | float],
    name: str | None = None,
    param_names: Mapping[str, str] | None = None,
) -> ast.Kernel:
    """Bind a template's parameters; the result has concrete shapes, no lets and simplified expressions."""
    missing = [p for p in kernel.template_params if p not in bindings]
    extra = [p for p in bindings if p not in kernel.template_params]
    if missing or extra:
        raise DSLError(
            f"kernel {kernel.name}: template parameters missing {missing} / unknown {extra}", *kernel.pos
        )
    env: dict[str, ast.Expr] = {k: literal(v) for k, v in bindings.items()}
    renames = dict(param_names or {})
    body: list[ast.Stmt] = []
    for s in kernel.body:
        if isinstance(s, ast.Let):
            value = simplify(substitute(s.value, env))
            if _num(value) is None:
                raise DSLError(f"let {s.name} does not evaluate to a constant", *s.pos)
            env[s.name] = value
            continue
        axes = tuple(
            dataclasses.replace(a, extent=ast.IntLit(_require_int(simplify(substitute(a.extent, env)), f"extent of {a.name}")))
            for a in s.axes
        )
        value = substitute(s.value, env)
        value = rename_tensors(value, renames)
        value = simplify(value, axis_ranges(axes))
        body.append(ast.Compute(renames.get(s.name, s.name), axes, value, s.pos))
    params = tuple(
        ast.TensorParam(
            renames.get(p.name, p.name),
            p.dtype,
            tuple(ast.IntLit(_require_int(simplify(substitute(d, env)), f"dimension of {p.name}")) for d in p.shape),
            p.pos,
        )
        for p in kernel.params
    )
    result = ast.Kernel(
        name or kernel.name, params, renames.get(kernel.output, kernel.output), tuple(body), (), kernel.attributes,
        kernel.pos,
    )
    return eliminate_copies(result)


def _is_identity_copy(s: ast.Compute, params: Mapping[str, ast.TensorParam]) -> str | None:
    """Name of the parameter that statement `s` copies element for element, if it does."""
    v = s.value
    if not isinstance(v, ast.Access) or v.tensor not in params:
        return None
    p = params[v.tensor]
    def same(i: ast.Expr, a: ast.Axis) -> bool:
        if isinstance(i, ast.Var):
            return i.name == a.name
        return isinstance(i, ast.IntLit) and i.value == 0 and a.extent == ast.IntLit(1)

    if len(v.indices) != len(s.axes) or not all(same(i, a) for i, a in zip(v.indices, s.axes)):
        return None
    if tuple(a.extent for a in s.axes) != p.shape:
        return None
    return p.name


def eliminate_copies(kernel: ast.Kernel) -> ast.Kernel:
    """Drop statements that only copy a parameter (e.g. padding by zero), reading the parameter directly."""
    params = {p.name: p for p in kernel.params}
    renames: dict[str, str] = {}
    constants: dict[str, ast.Expr] = {}
    body = []
    for s in kernel.body:
        if isinstance(s, ast.Compute):
            value = _inline_constant_tensors(rename_tensors(s.value, renames), constants)
            s = dataclasses.replace(s, value=simplify(value, axis_ranges(s.axes)))
            source = _is_identity_copy(s, params)
            if s.name != kernel.output:
                if source is not None:
                    renames[s.name] = source
                    continue
                if isinstance(s.value, (ast.IntLit, ast.FloatLit)):
                    constants[s.name] = s.value  # e.g. the divisor of an average pool whose windows are all full
                    continue
        body.append(s)
    return dataclasses.replace(kernel, body=tuple(body))


def _inline_constant_tensors(e: ast.Expr, constants: Mapping[str, ast.Expr]) -> ast.Expr:
    if not constants:
        return e
    if isinstance(e, ast.Access) and e.tensor in constants:
        return constants[e.tensor]
    return map_children(e, lambda c: _inline_constant_tensors(c, constants))


def flops(kernel: ast.Kernel) -> int:
    """Floating-point operations of a concrete kernel: per output point, 2 per multiply-add in reductions, 1 per
    other arithmetic node. Used for GFLOP/s reports, not for scheduling decisions."""

    def count(e: ast.Expr) -> int:
        own = 1 if isinstance(e, (ast.BinOp, ast.Call)) and not (isinstance(e, ast.Call) and e.func in ast.DTYPES) else 0
        if isinstance(e, ast.Reduce):
            extent = math.prod(a.extent.value for a in e.axes if isinstance(a.extent, ast.IntLit))
            return extent * (count(e.body) + 1)  # + 1: the accumulation (a multiply-add is 2 FLOPs)
        if isinstance(e, ast.Access):
            return 0
        return own + sum(count(c) for c in ast.children(e))

    total = 0
    for s in kernel.computes:
        points = math.prod(a.extent.value for a in s.axes if isinstance(a.extent, ast.IntLit))
        total += points * count(s.value)
    return total
