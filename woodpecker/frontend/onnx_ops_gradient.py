"""ai.onnx.preview.training.Gradient, computed at compile time by reverse-mode differentiation of the forward nodes.

Gradient(xs, y) gives dy/dx for each x of `xs` (for a y of more than one element: the gradient of sum(y), the
seed being ones). The importer keeps the ONNX node that produced each value (ImportContext.producers), so the
handler walks back from y over the nodes y depends on and emits, for each, its derivative rule as ONNX nodes run
through the ordinary handlers: the derivative is compiled like any other part of the graph. Only the operators with
a rule here are differentiated; a path through any other is refused naming that node, never approximated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from woodpecker.frontend.context import ImportContext, attributes
from woodpecker.frontend.op_base import HANDLERS, handles

GRADIENT_DOMAIN = "ai.onnx.preview.training"


class _Emitter:
    """Emits ONNX nodes through the handler table, on woodpecker values (the derivative's own nodes)."""

    def __init__(self, ctx: ImportContext, where: str) -> None:
        self.ctx, self.where, self.count = ctx, where, 0

    def _name(self, value: str) -> str:
        self.count += 1
        name = f"{self.where}/grad{self.count}"
        self.ctx.values[name] = value
        return name

    def __call__(self, op_type: str, *inputs: str, **attrs) -> str:
        names = [self._name(v) for v in inputs]
        proto = onnx.helper.make_node(op_type, names, [f"{self.where}/grad_out{self.count}"],
                                      name=f"{self.where}/{op_type}", **attrs)
        return HANDLERS[op_type](self.ctx, proto, attributes(proto))[0]

    def const(self, value: float, like: str) -> str:
        return self.ctx.b.constant(np.array(value, dtype=self.ctx.b.type_of(like).dtype), "grad_const")

    def unbroadcast(self, grad: str, shape: tuple[int, ...]) -> str:
        """The gradient of a broadcast input: summed over the axes it was broadcast along."""
        have = tuple(self.ctx.b.type_of(grad).shape)
        if have == tuple(shape):
            return grad
        lead = len(have) - len(shape)
        axes = [i for i, d in enumerate(have) if i < lead or (shape[i - lead] == 1 and d != 1)]
        if axes:
            if self.ctx.opset >= 13:
                grad = self("ReduceSum", grad, self.ctx.b.constant(np.array(axes, dtype=np.int64), "axes"), keepdims=1)
            else:
                grad = self("ReduceSum", grad, axes=axes, keepdims=1)
        return self("Reshape", grad, self.ctx.b.constant(np.array(shape, dtype=np.int64), "shape"))


# rule(emit, node inputs, node output, output gradient) -> the gradient of each input (None: not differentiable)
Rule = Callable[[_Emitter, list[str], str, str], list[str | None]]


def _matmul(e: _Emitter, ins: list[str], out: str, g: str) -> list[str | None]:
    a, b = ins
    if e.ctx.b.type_of(a).rank != 2 or e.ctx.b.type_of(b).rank != 2:
        raise ValueError("the gradient of MatMul is implemented for 2-D operands only")
    return [e("MatMul", g, e("Transpose", b, perm=[1, 0])), e("MatMul", e("Transpose", a, perm=[1, 0]), g)]


RULES: dict[str, Rule] = {
    "Add": lambda e, ins, out, g: [g, g],
    "Sub": lambda e, ins, out, g: [g, e("Neg", g)],
    "Mul": lambda e, ins, out, g: [e("Mul", g, ins[1]), e("Mul", g, ins[0])],
    "Div": lambda e, ins, out, g: [e("Div", g, ins[1]), e("Neg", e("Div", e("Mul", g, out), ins[1]))],
    "Neg": lambda e, ins, out, g: [e("Neg", g)],
    "Identity": lambda e, ins, out, g: [g],
    "Relu": lambda e, ins, out, g: [e("Mul", g, e("Sign", out))],
    "Sigmoid": lambda e, ins, out, g: [e("Mul", g, e("Mul", out, e("Sub", e.const(1.0, out), out)))],
    "Tanh": lambda e, ins, out, g: [e("Mul", g, e("Sub", e.const(1.0, out), e("Mul", out, out)))],
    "Exp": lambda e, ins, out, g: [e("Mul", g, out)],
    "Log": lambda e, ins, out, g: [e("Div", g, ins[0])],
    "Sqrt": lambda e, ins, out, g: [e("Div", g, e("Add", out, out))],
    "MatMul": _matmul,
}


@handles(f"{GRADIENT_DOMAIN}.Gradient")
def _gradient(ctx, node, attrs):
    xs, y = list(attrs["xs"]), attrs["y"]
    if len(node.output) != len(xs):
        raise ctx.fail(node, f"{len(node.output)} outputs for {len(xs)} xs")
    emit = _Emitter(ctx, node.name or "gradient")
    # The nodes y depends on, latest first (producers is in import order, which is topological).
    order = {name: k for k, name in enumerate(ctx.producers)}
    needed, stack = set(), [y]
    while stack:
        name = stack.pop()
        producer = ctx.producers.get(name)
        if producer is None or id(producer) in needed or name in xs:
            continue
        needed.add(id(producer))
        stack.extend(i for i in producer.input if i)
    nodes = {id(n): n for n in ctx.producers.values() if id(n) in needed}
    walk = sorted(nodes.values(), key=lambda n: -max(order[o] for o in n.output if o in order))
    # The floating-point values that depend on an x: only their producers carry a gradient back, so a branch that
    # does not (a Cast of a constant; a Shape, Size or comparison of an x, constant to it) is neither
    # differentiated nor refused.
    live = set(xs)
    for fwd in reversed(walk):
        if any(i in live for i in fwd.input):
            live.update(o for o in fwd.output
                        if o and ctx.b.type_of(ctx.value(o)).dtype.startswith(("float", "bfloat")))

    grads: dict[str, str] = {y: emit.const(1.0, ctx.value(y))}
    if ctx.b.type_of(ctx.value(y)).shape:
        grads[y] = emit("Expand", grads[y], ctx.b.constant(np.array(ctx.b.type_of(ctx.value(y)).shape,
                                                                    dtype=np.int64), "shape"))
    for fwd in walk:
        g = grads.get(fwd.output[0])
        if g is None or fwd.output[0] not in live:
            continue
        rule = RULES.get(fwd.op_type)
        if rule is None or fwd.domain not in ("", "ai.onnx") or len(fwd.output) != 1:
            raise ctx.fail(node, f"the gradient through {fwd.op_type} node {fwd.name!r} is not supported "
                                 f"(differentiable: {', '.join(sorted(RULES))})")
        ins = [ctx.value(i) for i in fwd.input]
        for name, value, grad in zip(fwd.input, ins, rule(emit, ins, ctx.value(fwd.output[0]), g)):
            if grad is None or name not in live:
                continue
            grad = emit.unbroadcast(grad, ctx.b.type_of(value).shape)
            grads[name] = emit("Add", grads[name], grad) if name in grads else grad
    out = []
    for x in xs:
        value = ctx.value(x)
        t = ctx.b.type_of(value)
        out.append(grads.get(x) or ctx.b.constant(np.zeros(t.shape, dtype=t.dtype), "zero_gradient"))
    return out
