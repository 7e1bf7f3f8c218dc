"""Dead-code elimination: drop nodes none of whose outputs reach a graph output, and unused constants."""

from __future__ import annotations

from woodpecker.ir.graph import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    kept.reverse()
    constants = {k: v for k, v in graph.constants.items() if k in live}
    types = {k: t for k, t in graph.types.items() if k in live or k in graph.inputs}
    for node in kept:
        for member in (node, *node.body):
            for v in (*member.inputs, *member.outputs):
                types[v] = graph.types[v]
    return graph.replace(nodes=tuple(kept), constants=constants, types=types)
