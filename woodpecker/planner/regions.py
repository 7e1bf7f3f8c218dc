"""The regions of a lowered model: one per kernel call, the operator it implements (woodpecker.runtime.region
holds the Region type, which an artifact's vendor calls are rebuilt from at load)."""

from __future__ import annotations

from woodpecker.ir.graph import Graph
from woodpecker.runtime.region import Region

__all__ = ["Region", "regions_of"]


def regions_of(lowered) -> list[Region]:
    """One Region per kernel call of a lowered model, in call order."""
    from woodpecker.lowering.model import KernelCall

    graph: Graph = lowered.graph
    by_name = {n.name: n for n in graph.nodes}
    out = []
    for step in lowered.steps:
        if not isinstance(step, KernelCall):
            continue
        node = by_name[step.node]
        body = node.body if node.op == "fused" else (node,)
        values = {v for n in body for v in (*n.inputs, *n.outputs)}
        inputs = tuple(v for v in node.inputs if v not in graph.constants)
        consts = tuple(sorted(v for v in values if v in graph.constants))
        out.append(Region(len(out), node.name, tuple(body), inputs, node.outputs[0],
                          {v: graph.types[v] for v in values}, consts))
    return out
