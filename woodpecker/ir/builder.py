"""GraphBuilder: the one way the frontend and the passes create nodes (type inference and constant folding included).

`emit(op, inputs, attrs)` infers the output types from the op registry; when every input is a constant (and folding
is on) the op is evaluated with its numpy reference and the result becomes a constant instead of a node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph, Node, TensorType, frozen_attrs

_SANITIZE = re.compile(r"[^A-Za-z0-9_]")


class GraphBuilder:
    def __init__(self, name: str = "graph", fold: bool = True) -> None:
        self.name = name
        self.fold = fold
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.inputs: list[str] = []
        self._names: set[str] = set()
        self.narrow_io: dict[str, str] = {}  # see Graph.narrow_io

    @classmethod
    def from_graph(cls, graph: Graph, fold: bool = True) -> GraphBuilder:
        b = cls(graph.name, fold)
        b.types = dict(graph.types)
        b.constants = dict(graph.constants)
        b.inputs = list(graph.inputs)
        b.narrow_io = dict(graph.narrow_io)
        b._names = set(graph.types) | {n.name for n in graph.nodes}
        return b

    # -- naming ------------------------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        base = _SANITIZE.sub("_", hint) or "v"
        if base[0].isdigit():
            base = "v" + base
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    # -- values --------------------------------------------------------------------------------------------------
    def add_input(self, name: str, ttype: TensorType) -> str:
        self._names.add(name)
        self.types[name] = ttype
        self.inputs.append(name)
        return name

    def constant(self, value: np.ndarray, hint: str = "const", dtype: str | None = None) -> str:
        # A constant keeps its dtype (float64 initializers of a float64 model stay float64); `dtype` converts.
        value = np.asarray(value) if dtype is None else np.asarray(value).astype(dtype, copy=False)
        name = self.fresh(hint)
        value = np.require(value, requirements="C").copy()  # (ascontiguousarray would make a scalar 1-D)
        value.setflags(write=False)
        self.constants[name] = value
        self.types[name] = TensorType(tuple(int(d) for d in value.shape), value.dtype.name)
        return name

    def type_of(self, value: str) -> TensorType:
        return self.types[value]

    def is_constant(self, value: str) -> bool:
        return value in self.constants

    # -- nodes ---------------------------------------------------------------------------------------------------
    def emit(
        self,
        op: str,
        inputs: Sequence[str],
        attrs: Mapping[str, Any] | None = None,
        name: str | None = None,
        num_outputs: int = 1,
        output_names: Sequence[str] | None = None,
    ) -> list[str]:
        attrs = dict(attrs or {})
        in_types = [self.types[v] for v in inputs]
        out_types = ops.infer_types(op, in_types, attrs)
        if self.fold and inputs and all(v in self.constants for v in inputs):
            values = ops.evaluate(op, [self.constants[v] for v in inputs], attrs)
            hints = output_names or [name or op] * len(values)
            # the folded value has the inferred type: a numpy reference that widens (float32 x float64 -> float64)
            # must not change the dtype the rest of the graph was typed with
            return [self.constant(v, h, t.dtype) for v, h, t in zip(values, hints, out_types)]
        node_name = self.fresh(name or op)
        outs = [self.fresh(n) for n in (output_names or [node_name + "_out"] * len(out_types))]
        for value, ttype in zip(outs, out_types):
            self.types[value] = ttype
        self.nodes.append(Node(node_name, op, tuple(inputs), tuple(outs), frozen_attrs(attrs)))
        return outs

    def emit1(self, op: str, inputs: Sequence[str], attrs: Mapping[str, Any] | None = None, **kw: Any) -> str:
        return self.emit(op, inputs, attrs, **kw)[0]

    def add_node(self, node: Node) -> None:
        """Re-emit an existing node unchanged (passes that keep most nodes as they are)."""
        self._names.add(node.name)
        self.nodes.append(node)

    def build(self, outputs: Sequence[str], output_names: Sequence[str] = ()) -> Graph:
        used: set[str] = set(outputs)
        for node in self.nodes:
            for member in (node, *node.body):
                used.update(member.inputs)
                used.update(member.outputs)
        constants = {k: v for k, v in self.constants.items() if k in used}
        types = {k: v for k, v in self.types.items() if k in used or k in self.inputs}
        graph = Graph(
            name=self.name,
            inputs=tuple(self.inputs),
            outputs=tuple(outputs),
            nodes=tuple(self.nodes),
            types=types,
            constants=constants,
            output_names=tuple(output_names),
            narrow_io=dict(self.narrow_io),
        )
        graph.validate()
        return graph
