"""Helpers for pass tests: small ONNX graphs imported through the frontend, and a semantics check that runs the
reference interpreter before and after a pass."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from woodpecker.frontend.onnx import import_onnx
from woodpecker.ir.graph import Graph
from woodpecker.ir.interpreter import interpret


def onnx_graph(nodes, inputs: dict, outputs: list[str], inits: dict | None = None, opset: int = 17) -> Graph:
    """nodes: (op_type, inputs, outputs, attrs) tuples; inputs: name -> shape; inits: name -> array."""
    protos = [helper.make_node(op, list(ins), list(outs), name=f"{op.lower()}_{i}", **attrs)
              for i, (op, ins, outs, attrs) in enumerate(nodes)]
    g = helper.make_graph(
        protos, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return import_onnx(model)


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v: rng.standard_normal(graph.types[v].shape).astype(graph.types[v].dtype) for v in graph.inputs}


def assert_same(before: Graph, after: Graph, rtol: float = 1e-4, atol: float = 1e-4, seed: int = 0) -> None:
    after.validate()
    assert after.inputs == before.inputs
    assert len(after.outputs) == len(before.outputs)
    for o_before, o_after in zip(before.outputs, after.outputs):
        t0, t1 = before.types[o_before], after.types[o_after]
        assert (t0.shape, t0.dtype, t0.layout) == (t1.shape, t1.dtype, t1.layout)
    feeds = random_inputs(before, seed)
    ref = interpret(before, feeds)
    got = interpret(after, feeds)
    for r, g in zip(ref, got):
        assert r.shape == g.shape and r.dtype == g.dtype
        scale = max(float(np.max(np.abs(r))), 1.0) if r.size else 1.0
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol * scale)


def ops_of(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def rand(*shape, seed=None, low=None, high=None):
    rng = np.random.default_rng(seed if seed is not None else hash(shape) % 2**32)
    if low is not None:
        return rng.uniform(low, high, shape).astype(np.float32)
    return (rng.standard_normal(shape) / np.sqrt(max(np.prod(shape[1:]), 1))).astype(np.float32)


class Helpers:
    onnx_graph = staticmethod(onnx_graph)
    assert_same = staticmethod(assert_same)
    ops_of = staticmethod(ops_of)
    rand = staticmethod(rand)
    random_inputs = staticmethod(random_inputs)


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
