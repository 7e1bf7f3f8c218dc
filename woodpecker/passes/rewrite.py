"""Rewriter: the shared machinery of rewriting passes (copy nodes, alias values, emit replacements).

A pass walks the old graph in order; for each node it either copies it (inputs renamed through the alias map) or
emits replacement nodes and aliases the old outputs to the new values. Replaced producers that lose all their
users are removed afterwards by dead-code elimination.
"""

from __future__ import annotations

from woodpecker.ir.builder import GraphBuilder
from woodpecker.ir.graph import Graph, Node


class Rewriter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.b = GraphBuilder.from_graph(graph)
        self.alias: dict[str, str] = {}
        self.uses = graph.use_counts()
        self.producer: dict[str, Node] = {}  # value -> node that produces it in the new graph

    def map(self, value: str) -> str:
        while value in self.alias:
            value = self.alias[value]
        return value

    def copy(self, node: Node) -> Node:
        new = node.with_(inputs=tuple(self.map(v) for v in node.inputs))
        self.b.add_node(new)
        for out in new.outputs:
            self.producer[out] = new
        return new

    def emit(self, op: str, inputs: list[str], attrs: dict | None = None, name: str | None = None) -> str:
        value = self.b.emit1(op, inputs, attrs, name=name)
        if self.b.nodes and value in self.b.nodes[-1].outputs:
            self.producer[value] = self.b.nodes[-1]
        return value

    def replace(self, old_value: str, new_value: str) -> None:
        self.alias[old_value] = new_value

    def finish(self) -> Graph:
        outputs = [self.map(v) for v in self.graph.outputs]
        return self.b.build(outputs, self.graph.output_names)
