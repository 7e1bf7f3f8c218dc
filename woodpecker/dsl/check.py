"""Semantic checks of DSL kernels: names in scope, tensor ranks, call arity, reductions at the top of a statement.

Every error names the position (line:column) of the offending construct.
"""

from __future__ import annotations

from collections.abc import Mapping

from woodpecker.dsl import ast
from woodpecker.dsl.narrow import NARROW_BUILTINS
from woodpecker.errors import DSLError

# builtin scalar functions and their arity
BUILTINS: dict[str, int] = {
    "exp": 1, "log": 1, "sqrt": 1, "rsqrt": 1, "tanh": 1, "sigmoid": 1, "erf": 1, "abs": 1, "floor": 1,
    "ceil": 1, "max": 2, "min": 2, "pow": 2,
    # trigonometry; round (to nearest, ties to even), trunc (towards zero); fmod (C fmod: the sign of x);
    # isnan/isinf (bool)
    "sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1, "atan": 1, "sinh": 1, "cosh": 1, "asinh": 1, "acosh": 1,
    "atanh": 1, "round": 1, "trunc": 1, "fmod": 2, "isnan": 1, "isinf": 1,
    # select(c, a, b): a where c holds, else b, with both evaluated (unlike `a if c else b`): for reads that are
    # in bounds either way, so that a vector loop stays vectorized
    "select": 3,
    # rounding into a narrow type, given in its carrier: to_f16, to_bf16, to_e4m3fn_sat, to_i4... (dsl.narrow)
    **{name: 1 for name in NARROW_BUILTINS},
}


class _Checker:
    def __init__(self, kernel: ast.Kernel, fns: Mapping[str, ast.FnDef], source: str) -> None:
        self.kernel = kernel
        self.fns = fns
        self.source = source
        self.ranks: dict[str, int] = {}
        self.constants: set[str] = set(kernel.template_params)

    def fail(self, message: str, pos: ast.Pos) -> DSLError:
        return DSLError(message, pos[0] or None, pos[1] or None, self.source)

    def run(self) -> None:
        k = self.kernel
        for p in k.params:
            if p.name in self.ranks or p.name in self.constants:
                raise self.fail(f"parameter {p.name} is defined twice", p.pos)
            for d in p.shape:
                self.expr(d, set(), index_only=True)
            self.ranks[p.name] = len(p.shape)
        seen_output = False
        for s in k.body:
            if isinstance(s, ast.Let):
                if s.name in self.constants or s.name in self.ranks:
                    raise self.fail(f"let {s.name} redefines a name", s.pos)
                self.expr(s.value, set(), index_only=True)
                self.constants.add(s.name)
                continue
            if s.name in self.ranks or s.name in self.constants:
                raise self.fail(f"tensor {s.name} is defined twice", s.pos)
            names = set()
            for a in s.axes:
                if a.name in names:
                    raise self.fail(f"index {a.name} is declared twice in {s.name}", a.pos)
                if a.name in self.constants:
                    raise self.fail(f"index {a.name} shadows a constant", a.pos)
                self.expr(a.extent, set(), index_only=True)
                names.add(a.name)
            self.expr(s.value, names, top=True)
            self.ranks[s.name] = len(s.axes)
            if s.name == k.output:
                seen_output = True
        if not seen_output:
            raise self.fail(f"kernel {k.name} never defines its output {k.output}", k.pos)
        last = k.computes[-1].name if k.computes else None
        if last != k.output:
            raise self.fail(f"the output {k.output} must be the last statement of kernel {k.name}", k.pos)

    def expr(self, e: ast.Expr, indices: set[str], top: bool = False, index_only: bool = False) -> None:
        if isinstance(e, ast.Var):
            if e.name not in indices and e.name not in self.constants:
                raise self.fail(f"unknown name {e.name}", e.pos)
            return
        if isinstance(e, ast.Access):
            if index_only:
                raise self.fail(f"tensor {e.tensor} cannot appear in a shape or extent", e.pos)
            if e.tensor not in self.ranks:
                raise self.fail(f"unknown tensor {e.tensor}", e.pos)
            if len(e.indices) != self.ranks[e.tensor]:
                raise self.fail(
                    f"tensor {e.tensor} has rank {self.ranks[e.tensor]} but is indexed with {len(e.indices)} indices",
                    e.pos,
                )
        elif isinstance(e, ast.Call):
            if e.func in ast.DTYPES:
                arity = 1
            elif e.func in BUILTINS:
                arity = BUILTINS[e.func]
            elif e.func in self.fns:
                arity = len(self.fns[e.func].params)
            else:
                raise self.fail(f"unknown function {e.func}", e.pos)
            if len(e.args) != arity:
                raise self.fail(f"{e.func} takes {arity} argument(s), got {len(e.args)}", e.pos)
        elif isinstance(e, ast.Reduce):
            if not top:
                raise self.fail("a reduction must be the whole right-hand side of a statement", e.pos)
            inner = set(indices)
            for a in e.axes:
                if a.name in inner or a.name in self.constants:
                    raise self.fail(f"reduction index {a.name} shadows another name", a.pos)
                self.expr(a.extent, set(), index_only=True)
                inner.add(a.name)
            self.expr(e.body, inner)
            return
        for child in ast.children(e):
            self.expr(child, indices, index_only=index_only)


def check_kernel(kernel: ast.Kernel, fns: Mapping[str, ast.FnDef], source: str = "<dsl>") -> None:
    _Checker(kernel, fns, source).run()


def check_fn(fn: ast.FnDef, fns: Mapping[str, ast.FnDef], source: str = "<dsl>") -> None:
    for e in ast.walk(fn.body):
        if isinstance(e, ast.Var) and e.name not in fn.params:
            raise DSLError(f"unknown name {e.name} in fn {fn.name}", e.pos[0] or None, e.pos[1] or None, source)
        if isinstance(e, (ast.Access, ast.Reduce)):
            raise DSLError(f"fn {fn.name} must be scalar (no tensors, no reductions)", *(e.pos), source)
        if isinstance(e, ast.Call) and e.func not in BUILTINS and e.func not in ast.DTYPES and e.func not in fns:
            raise DSLError(f"unknown function {e.func} in fn {fn.name}", *(e.pos), source)
        if isinstance(e, ast.Call):
            # as in kernels: inlining a call with too few arguments would leave a parameter unbound
            arity = 1 if e.func in ast.DTYPES else BUILTINS[e.func] if e.func in BUILTINS else len(fns[e.func].params)
            if len(e.args) != arity:
                raise DSLError(f"{e.func} takes {arity} argument(s), got {len(e.args)} (in fn {fn.name})", *e.pos,
                               source)
