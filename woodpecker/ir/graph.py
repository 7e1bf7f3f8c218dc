"""Graph IR: TensorType, Node and Graph, immutable values passed between the frontend, passes and lowering.

A Graph is a list of Nodes in topological order over named values. Every value has a static TensorType. Weights
and folded values are `constants` (numpy arrays, treated as read-only). A `fused` node carries its member nodes in
`body`; it is what the fusion passes produce and what becomes one DSL program.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32", "int64", "bool", ...
    # Memory layout tag for 4-D activations: "" (plain, row-major as in ONNX) or a blocked one such as "NCHW16c".
    layout: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def __str__(self) -> str:
        tag = f" {self.layout}" if self.layout else ""
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]{tag}"


def frozen_attrs(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Attributes are read-only once a node is built; lists become tuples so that nodes compare by value."""

    def freeze(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        return v

    return types.MappingProxyType({k: freeze(v) for k, v in (attrs or {}).items()})


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=lambda: frozen_attrs({}))
    # Member nodes of a `fused` node, in topological order; empty for every other op.
    body: tuple[Node, ...] = ()

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def with_(self, **changes: Any) -> Node:
        if "attrs" in changes:
            changes["attrs"] = frozen_attrs(changes["attrs"])
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    types: Mapping[str, TensorType]
    constants: Mapping[str, np.ndarray]
    # Original ONNX names of the graph outputs, when an output had to be renamed internally.
    output_names: tuple[str, ...] = ()
    # Inputs and outputs (by user-facing name) of a narrow type (float16, bfloat16, float8, int4...: ir.formats),
    # held in the graph in its carrier type: the runtime converts them at the boundary.
    narrow_io: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def type_of(self, value: str) -> TensorType:
        return self.types[value]

    def is_constant(self, value: str) -> bool:
        return value in self.constants

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for value in node.inputs:
                users.setdefault(value, []).append(node)
        return users

    def use_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {v: 1 for v in self.outputs}
        for node in self.nodes:
            for value in node.inputs:
                counts[value] = counts.get(value, 0) + 1
        return counts

    def replace(self, **changes: Any) -> Graph:
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        ops: dict[str, int] = {}
        for node in self.nodes:
            key = node.op if node.op != "fused" else "fused(" + "+".join(n.op for n in node.body) + ")"
            ops[key] = ops.get(key, 0) + 1
        return ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))

    def validate(self) -> None:
        """Check SSA form and topological order; raises AssertionError (a woodpecker bug, not a user error)."""
        defined = set(self.inputs) | set(self.constants)
        for node in self.nodes:
            for value in node.inputs:
                assert value in defined, f"node {node.name} reads {value} before it is defined"
            for value in node.outputs:
                assert value not in defined, f"value {value} is defined twice (node {node.name})"
                assert value in self.types, f"value {value} has no type"
                defined.add(value)
        for value in self.outputs:
            assert value in defined, f"graph output {value} is never defined"


def topo_sort(nodes: Iterable[Node], available: Iterable[str]) -> tuple[Node, ...]:
    """Order nodes so that every input is produced before use (stable for already-sorted input)."""
    pending = list(nodes)
    ready = set(available)
    ordered: list[Node] = []
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(v in ready for v in node.inputs):
                ordered.append(node)
                ready.update(node.outputs)
                progressed = True
            else:
                rest.append(node)
        if not progressed:
            missing = sorted({v for n in rest for v in n.inputs if v not in ready})
            raise AssertionError(f"graph has a cycle or undefined values: {missing[:5]}")
        pending = rest
    return tuple(ordered)
