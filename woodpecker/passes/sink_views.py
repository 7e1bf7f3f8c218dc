"""Reshape sinking: move a reshape below the elementwise ops that follow it, so that they fuse with the producer.

PyTorch exports a linear layer on [batch, seq, hidden] as MatMul then Add(bias); the frontend turns the MatMul
into a dense layer on [batch*seq, hidden] followed by a reshape, which would cut the bias add off the dense
kernel's epilogue. This pass rewrites  y = op(reshape(a), b)  as  y = reshape(op(a, b'))  where b' is b viewed in
a's shape (free: a view or a folded constant), whenever b's broadcast pattern survives the reshape.
"""

from __future__ import annotations

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph
from woodpecker.lowering.reindex import dim_groups
from woodpecker.passes.rewrite import Rewriter

ANCHORS = {name for name, d in ops.REGISTRY.items() if d.kind == "anchor"}


def _shape_in(operand: tuple[int, ...], view: tuple[int, ...], base: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape that `operand` (broadcast against `view`) must take to broadcast the same way against `base`."""
    aligned = (1,) * (len(view) - len(operand)) + tuple(operand)
    if len(aligned) != len(view):
        return None
    out = [1] * len(base)
    for gv, gb in dim_groups(view, base):
        dims = [aligned[i] for i in gv]
        if all(d == 1 for d in dims):
            continue
        if all(aligned[i] == view[i] for i in gv):
            for j in gb:
                out[j] = base[j]
            continue
        return None  # broadcast inside a merged group: the reshape does not commute with it
    return tuple(out)


def sink_views(graph: Graph) -> Graph:
    rw = Rewriter(graph)
    outputs = set(graph.outputs)
    for node in graph.nodes:
        if node.op not in ops.ELEMENTWISE_OPS or node.outputs[0] in outputs:
            rw.copy(node)
            continue
        inputs = [rw.map(v) for v in node.inputs]
        out_shape = rw.b.type_of(node.outputs[0]).shape
        view_idx = None
        for i, v in enumerate(inputs):
            prod = rw.producer.get(v)
            if prod is not None and prod.op == "reshape" and rw.b.type_of(v).shape == out_shape:
                src = rw.producer.get(prod.inputs[0])
                if src is not None and (src.op in ANCHORS or src.op in ops.ELEMENTWISE_OPS):
                    view_idx = i
                    break
        if view_idx is None:
            rw.copy(node)
            continue
        base_value = rw.producer[inputs[view_idx]].inputs[0]
        base = rw.b.type_of(base_value).shape
        new_inputs = []
        for i, v in enumerate(inputs):
            if i == view_idx:
                new_inputs.append(base_value)
                continue
            shape = _shape_in(rw.b.type_of(v).shape, out_shape, base)
            if shape is None:
                break
            new_inputs.append(v if rw.b.type_of(v).shape == shape else rw.emit("reshape", [v], {"shape": shape}))
        else:
            y = rw.emit(node.op, new_inputs, dict(node.attrs), name=node.name)
            rw.replace(node.outputs[0], rw.emit("reshape", [y], {"shape": out_shape}))
            continue
        rw.copy(node)
    return rw.finish()
