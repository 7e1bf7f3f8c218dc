"""Algebraic clean-up: identities disappear, reshape chains collapse, reshapes that change nothing vanish."""

from __future__ import annotations

from woodpecker.ir.graph import Graph
from woodpecker.passes.rewrite import Rewriter


def simplify_graph(graph: Graph) -> Graph:
    rw = Rewriter(graph)
    outputs = set(graph.outputs)
    for node in graph.nodes:
        src = rw.map(node.inputs[0]) if node.inputs else None
        if node.op == "identity" and node.outputs[0] not in outputs:
            rw.replace(node.outputs[0], src)
            continue
        if node.op == "reshape":
            producer = rw.producer.get(src)
            if producer is not None and producer.op == "reshape":
                src = producer.inputs[0]  # reshape(reshape(x)) == reshape(x): read the original directly
            if tuple(rw.b.type_of(src).shape) == tuple(node.attrs["shape"]) and node.outputs[0] not in outputs:
                rw.replace(node.outputs[0], src)
                continue
            rw.copy(node.with_(inputs=(src,)))
            continue
        rw.copy(node)
    return rw.finish()
