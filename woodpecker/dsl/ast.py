"""AST of woodpecker's tensor DSL (frozen dataclasses; `pos` is the source position, ignored by equality).

A program is a list of scalar functions (`fn`) and kernels. A kernel has typed tensor parameters, an ordered list
of statements and one output. A compute statement defines a tensor by an expression over its index variables;
reductions (`sum`, `max`, `min` over declared axes) appear only at the top of a statement's expression, which keeps
every statement one loop nest. A kernel may be a template: its `<params>` are integer constants bound when the
graph lowering instantiates it, and `let` statements derive further constants from them.
"""

from __future__ import annotations

import dataclasses
from typing import Union

Pos = tuple[int, int]  # (line, column), 1-based; (0, 0) for generated nodes

DTYPES = {"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "i16": "int16", "i8": "int8",
          "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64", "bool": "bool"}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
REDUCERS = ("sum", "max", "min")


def _pos() -> Pos:
    return dataclasses.field(default=(0, 0), compare=False, repr=False)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class IntLit:
    value: int
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class FloatLit:
    value: float
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class BoolLit:
    value: bool
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Var:
    """An index variable, a template parameter or a let constant."""

    name: str
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Access:
    """Element of a tensor: `X[n, c, h + 1, w]`."""

    tensor: str
    indices: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Call:
    """A builtin math function, a dtype cast (`f32(x)`) or a user `fn`."""

    func: str
    args: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % **
    lhs: Expr
    rhs: Expr
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Neg:
    operand: Expr
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Compare:
    """Chained comparison, as in Python: `0 <= h < 56` is ops=("<=", "<"), operands=(0, h, 56)."""

    ops: tuple[str, ...]
    operands: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Not:
    operand: Expr
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class IfElse:
    """`then if cond else otherwise` (Python order)."""

    cond: Expr
    then: Expr
    otherwise: Expr
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Axis:
    """An index variable with its extent: `c < 64` ranges c over 0..63."""

    name: str
    extent: Expr
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Reduce:
    """`sum(body for c < 64, r < 3)`."""

    reducer: str
    body: Expr
    axes: tuple[Axis, ...]
    pos: Pos = _pos()


Expr = Union[IntLit, FloatLit, BoolLit, Var, Access, Call, BinOp, Neg, Compare, BoolOp, Not, IfElse, Reduce]


@dataclasses.dataclass(frozen=True)
class TensorParam:
    name: str
    dtype: str  # numpy name, e.g. "float32"
    shape: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Compute:
    name: str
    axes: tuple[Axis, ...]
    value: Expr
    pos: Pos = _pos()


Stmt = Union[Let, Compute]


@dataclasses.dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str | int, ...]
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Kernel:
    name: str
    params: tuple[TensorParam, ...]
    output: str
    body: tuple[Stmt, ...]
    template_params: tuple[str, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    pos: Pos = _pos()

    def attribute(self, name: str, default: str | int | None = None) -> str | int | None:
        for attr in self.attributes:
            if attr.name == name:
                return attr.values[0] if attr.values else True
        return default

    @property
    def computes(self) -> tuple[Compute, ...]:
        return tuple(s for s in self.body if isinstance(s, Compute))

    def statement(self, name: str) -> Compute:
        for s in self.computes:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclasses.dataclass(frozen=True)
class FnDef:
    """A scalar function, inlined at its call sites: `fn relu(x) = max(x, 0.0)`."""

    name: str
    params: tuple[str, ...]
    body: Expr
    pos: Pos = _pos()


@dataclasses.dataclass(frozen=True)
class Module:
    fns: tuple[FnDef, ...] = ()
    kernels: tuple[Kernel, ...] = ()


def children(expr: Expr) -> tuple[Expr, ...]:
    """Direct sub-expressions (used by generic walkers)."""
    if isinstance(expr, Access):
        return expr.indices
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, BinOp):
        return (expr.lhs, expr.rhs)
    if isinstance(expr, (Neg, Not)):
        return (expr.operand,)
    if isinstance(expr, (Compare, BoolOp)):
        return expr.operands
    if isinstance(expr, IfElse):
        return (expr.cond, expr.then, expr.otherwise)
    if isinstance(expr, Reduce):
        return (expr.body,) + tuple(a.extent for a in expr.axes)
    return ()


def walk(expr: Expr):
    """Pre-order traversal of an expression."""
    yield expr
    for child in children(expr):
        yield from walk(child)
