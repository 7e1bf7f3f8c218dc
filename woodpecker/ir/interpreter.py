"""Reference interpreter: runs a Graph with the numpy reference of every op (fused nodes included).

Slow but independent of TVM; the passes are tested by checking that a graph computes the same before and after.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph, Node


def run_nodes(nodes: tuple[Node, ...], env: dict[str, np.ndarray]) -> None:
    for node in nodes:
        if node.op == "fused":
            inner = {k: env[k] for k in node.inputs}
            run_nodes(node.body, inner)
            for out in node.outputs:
                env[out] = inner[out]
            continue
        results = ops.evaluate(node.op, [env[v] for v in node.inputs], node.attrs)
        for name, value in zip(node.outputs, results):
            env[name] = value


def interpret(graph: Graph, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    env: dict[str, np.ndarray] = dict(graph.constants)
    for name in graph.inputs:
        env[name] = np.asarray(inputs[name])
    run_nodes(graph.nodes, env)
    return [env[v] for v in graph.outputs]
