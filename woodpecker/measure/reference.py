"""Reference inputs and outputs of a task, from the numpy references of its graph node (independent of TVM).

Weights are the model's own; activations are seeded random normals; integer inputs (indices) are small and
non-negative so that they are valid for any table. Arrays are given in the kernel's parameter shapes.
"""

from __future__ import annotations

import numpy as np

from woodpecker.ir.graph import Graph, Node
from woodpecker.ir.interpreter import run_nodes
from woodpecker.lowering.model import Task


def reference_io(task: Task, node: Node, graph: Graph, args: tuple[str, ...], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """(inputs in parameter order, expected output) for one kernel call `args` (inputs then output values)."""
    rng = np.random.default_rng(seed)
    env: dict[str, np.ndarray] = {}
    for v in node.inputs:
        if v in graph.constants:
            env[v] = np.asarray(graph.constants[v])
            continue
        t = graph.types[v]
        if t.dtype.startswith("float"):
            env[v] = rng.standard_normal(t.shape).astype(t.dtype)
        elif t.dtype == "bool":
            env[v] = rng.integers(0, 2, t.shape).astype(bool)
        else:
            env[v] = rng.integers(0, 2, t.shape).astype(t.dtype)
    run_nodes((node,), env)
    shapes = task.param_shapes
    inputs = []
    for value, shape in zip(args[:-1], shapes[:-1]):
        arr = env[value] if value in env else np.asarray(graph.constants[value])
        inputs.append(np.ascontiguousarray(np.asarray(arr).reshape(shape)))
    expected = np.ascontiguousarray(env[args[-1]].reshape(shapes[-1]))
    return inputs, expected


class ReferenceStore:
    """Each task's reference inputs and expected output, as the .npz file the measuring jobs load
    (n_inputs, in0..in{n-1}, expected): one store per measurer, removed with it."""

    def __init__(self, prefix: str) -> None:
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        self._paths: dict[str, str] = {}

    def add(self, task: Task, inputs, expected: np.ndarray) -> None:
        import os

        path = os.path.join(self._dir.name, f"{task.key}.npz")
        arrays = {f"in{i}": np.ascontiguousarray(a) for i, a in enumerate(inputs)}
        np.savez(path, n_inputs=np.int64(len(inputs)), expected=np.ascontiguousarray(expected), **arrays)
        self._paths[task.key] = path

    def __contains__(self, task: Task) -> bool:
        return task.key in self._paths

    def path(self, task: Task) -> str:
        return self._paths[task.key]

    def require(self, tasks) -> None:
        """RuntimeError naming the first task without reference data."""
        for task in tasks:
            if task.key not in self._paths:
                raise RuntimeError(f"no reference data for task {task.name}; call set_reference first")

    def cleanup(self) -> None:
        self._dir.cleanup()
