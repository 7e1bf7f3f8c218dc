"""Dense weight packing: W [N, K] -> [N/b, K, b], so that a block of b output columns reads a contiguous panel."""

from __future__ import annotations

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph
from woodpecker.passes.rewrite import Rewriter


def pack_dense(graph: Graph, block: int = 16) -> Graph:
    rw = Rewriter(graph)
    for node in graph.nodes:
        w = rw.map(node.inputs[1]) if node.op == "dense" else None
        if w is not None and rw.b.is_constant(w):
            n = rw.b.constants[w].shape[0]
            b = block if n % block == 0 else 8 if n % 8 == 0 else None
            if b is not None:
                packed = rw.b.constant(ops.pack_dense_weight(rw.b.constants[w], b), node.inputs[1] + "_packed")
                out = rw.emit("dense_packed", [rw.map(node.inputs[0]), packed], name=node.name)
                rw.replace(node.outputs[0], out)
                continue
        rw.copy(node)
    return rw.finish()
