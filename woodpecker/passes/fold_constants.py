"""Constant folding: evaluate every node whose inputs are all constants (numpy references) and drop it."""

from __future__ import annotations

from woodpecker.ir.graph import Graph
from woodpecker.passes.rewrite import Rewriter


def fold_constants(graph: Graph) -> Graph:
    rw = Rewriter(graph)
    for node in graph.nodes:
        inputs = [rw.map(v) for v in node.inputs]
        if node.op != "fused" and inputs and all(rw.b.is_constant(v) for v in inputs):
            outs = rw.b.emit(node.op, inputs, node.attrs, name=node.name)  # the builder folds it
            for old, new in zip(node.outputs, outs):
                rw.replace(old, new)
            continue
        rw.copy(node)
    return rw.finish()
