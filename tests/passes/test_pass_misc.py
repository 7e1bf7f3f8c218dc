"""Constant folding, graph simplification, dead-code elimination and dense packing."""

from __future__ import annotations

import numpy as np

from woodpecker.ir.builder import GraphBuilder
from woodpecker.ir.graph import TensorType
from woodpecker.passes.dce import eliminate_dead_code
from woodpecker.passes.fold_constants import fold_constants
from woodpecker.passes.pack_dense import pack_dense
from woodpecker.passes.simplify import simplify_graph


def _unfolded_graph():
    """x + exp(c1) * c2, with the constant subexpression left as nodes (a builder that does not fold)."""
    b = GraphBuilder("g", fold=False)
    x = b.add_input("x", TensorType((2, 3), "float32"))
    c1 = b.constant(np.arange(6, dtype=np.float32).reshape(2, 3) / 6, "c1")
    c2 = b.constant(np.float32(2.0), "c2")
    k = b.emit1("mul", [b.emit1("exp", [c1]), c2])
    return b.build([b.emit1("add", [x, k])])


def test_fold_constants(h):
    g = _unfolded_graph()
    assert [n.op for n in g.nodes] == ["exp", "mul", "add"]
    out = fold_constants(g)
    assert [n.op for n in out.nodes] == ["add"]
    h.assert_same(g, out)
    folded = next(v for v in out.nodes[0].inputs if v in out.constants)
    np.testing.assert_allclose(out.constants[folded], np.exp(np.arange(6).reshape(2, 3) / 6) * 2, rtol=1e-6)
    assert not out.constants[folded].flags.writeable


def test_simplify_removes_identities_and_collapses_reshapes(h):
    b = GraphBuilder("g", fold=False)
    x = b.add_input("x", TensorType((2, 3, 4), "float32"))
    i = b.emit1("identity", [x])
    r1 = b.emit1("reshape", [i], {"shape": (6, 4)})
    r2 = b.emit1("reshape", [r1], {"shape": (24,)})
    r3 = b.emit1("reshape", [r2], {"shape": (24,)})  # changes nothing
    y = b.emit1("relu", [r3])
    g = b.build([y])
    out = eliminate_dead_code(simplify_graph(g))
    h.assert_same(g, out)
    assert [n.op for n in out.nodes] == ["reshape", "relu"]
    assert out.nodes[0].inputs == ("x",) and out.nodes[0].attrs["shape"] == (24,)


def test_simplify_keeps_an_identity_that_is_a_graph_output(h):
    b = GraphBuilder("g", fold=False)
    x = b.add_input("x", TensorType((3,), "float32"))
    y = b.emit1("identity", [b.emit1("relu", [x])])
    g = b.build([y])
    out = simplify_graph(g)
    assert [n.op for n in out.nodes] == ["relu", "identity"]
    h.assert_same(g, out)


def test_dead_code_elimination(h):
    g = h.onnx_graph([("Relu", ["x"], ["a"], {}), ("Exp", ["x"], ["dead1"], {}), ("Mul", ["dead1", "k"], ["dead2"], {}),
                      ("Tanh", ["a"], ["y"], {})], {"x": [4]}, ["y"], {"k": np.ones(4, np.float32)})
    assert len(g.nodes) == 4 and "k" in g.constants
    out = eliminate_dead_code(g)
    assert [n.op for n in out.nodes] == ["relu", "tanh"]
    assert "k" not in out.constants and not any(v.startswith("dead") for v in out.types)
    assert out.inputs == g.inputs
    h.assert_same(g, out)
    assert eliminate_dead_code(out).nodes == out.nodes


def test_dead_code_elimination_keeps_unused_inputs_and_fused_member_types(h):
    from woodpecker.passes.fuse import fuse_epilogues

    g = h.onnx_graph([("Relu", ["x"], ["a"], {}), ("Exp", ["a"], ["y"], {})], {"x": [4], "unused": [2]}, ["y"])
    fused = fuse_epilogues(h.onnx_graph([("Transpose", ["x"], ["t"], {"perm": [1, 0]}), ("Exp", ["t"], ["e"], {}),
                                         ("Relu", ["e"], ["y"], {})], {"x": [2, 3]}, ["y"]))
    out = eliminate_dead_code(fused)
    for n in out.nodes:
        for m in n.body:
            assert all(v in out.types for v in (*m.inputs, *m.outputs))
    out2 = eliminate_dead_code(g)
    assert out2.inputs == ("x", "unused") and "unused" in out2.types


def test_pack_dense(h):
    inits = dict(w16=h.rand(32, 10, seed=1), w8=h.rand(24, 10, seed=2), w5=h.rand(5, 10, seed=3))
    g = h.onnx_graph([("Gemm", ["x", "w16"], ["a"], {"transB": 1}), ("Gemm", ["x", "w8"], ["b"], {"transB": 1}),
                      ("Gemm", ["x", "w5"], ["c"], {"transB": 1})], {"x": [3, 10]}, ["a", "b", "c"], inits)
    out = eliminate_dead_code(pack_dense(g))
    h.assert_same(g, out)
    assert [n.op for n in out.nodes] == ["dense_packed", "dense_packed", "dense"]
    shapes = [out.constants[n.inputs[1]].shape for n in out.nodes]
    assert shapes == [(2, 10, 16), (3, 10, 8), (5, 10)]
    packed = out.constants[out.nodes[0].inputs[1]]
    np.testing.assert_array_equal(packed[1, :, 3], g.constants[g.nodes[0].inputs[1]][16 + 3])


def test_pack_dense_with_a_runtime_weight_is_left_alone(h):
    g = h.onnx_graph([("Gemm", ["x", "w"], ["y"], {"transB": 1})], {"x": [3, 10], "w": [16, 10]}, ["y"])
    out = pack_dense(g)
    assert "dense_packed" not in [n.op for n in out.nodes]
    h.assert_same(g, out)
