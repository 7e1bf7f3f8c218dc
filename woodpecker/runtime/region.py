"""Region: the operator one kernel call implements (its canonical nodes, run-time inputs and output), and its JSON
form, so that a vendor implementation chosen by the planner can be rebuilt when an artifact is loaded."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from woodpecker.ir.graph import Node, TensorType, frozen_attrs


@dataclasses.dataclass(frozen=True)
class Region:
    index: int  # position of the call in the program
    node: str  # graph node the call implements
    body: tuple[Node, ...]  # canonical nodes, in order
    inputs: tuple[str, ...]  # values the region reads at run time (constants excluded)
    output: str
    types: Mapping[str, TensorType]  # every value the region touches
    constant_names: tuple[str, ...]  # constants the region reads (their arrays are the model's weights)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "node": self.node,
            "body": [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "outputs": list(n.outputs),
                      "attrs": {k: _jsonable(v) for k, v in n.attrs.items()}} for n in self.body],
            "inputs": list(self.inputs),
            "output": self.output,
            "types": {k: [list(t.shape), t.dtype, t.layout] for k, t in self.types.items()},
            "constants": list(self.constant_names),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Region:
        body = tuple(Node(n["name"], n["op"], tuple(n["inputs"]), tuple(n["outputs"]), frozen_attrs(_tuples(n["attrs"])))
                     for n in d["body"])
        types = {k: TensorType(tuple(int(x) for x in s), str(dt), str(lay)) for k, (s, dt, lay) in d["types"].items()}
        return Region(int(d["index"]), str(d["node"]), body, tuple(d["inputs"]), str(d["output"]), types,
                      tuple(d["constants"]))


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _tuples(attrs: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has no tuples: attribute lists come back as tuples, the form the graph IR uses
    return {k: tuple(_tuples_value(x) for x in v) if isinstance(v, list) else v for k, v in attrs.items()}


def _tuples_value(v: Any) -> Any:
    return tuple(_tuples_value(x) for x in v) if isinstance(v, list) else v
