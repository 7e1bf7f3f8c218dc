"""BatchNorm folding: batch_norm after conv/dense disappears into the weights, leaving one bias add."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.passes.dce import eliminate_dead_code
from woodpecker.passes.fold_batchnorm import fold_batchnorm


def _bn_inits(c: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(gamma=rng.uniform(0.5, 1.5, c).astype(np.float32), beta=rng.normal(0, 0.5, c).astype(np.float32),
                mean=rng.normal(0, 0.5, c).astype(np.float32), var=rng.uniform(0.5, 1.5, c).astype(np.float32))


BN = ("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"], {"epsilon": 1e-3})


@pytest.mark.parametrize("groups, bias", [(1, False), (1, True), (2, False), (8, True)])
def test_conv_batchnorm_relu_folds_to_conv_plus_one_add(h, groups, bias):
    conv_in = ["x", "w"] + (["b"] if bias else [])
    inits = dict(w=h.rand(8, 8 // groups, 3, 3, seed=1), b=h.rand(8, seed=2, low=-1, high=1), **_bn_inits(8))
    if not bias:
        del inits["b"]
    g = h.onnx_graph([("Conv", conv_in, ["c"], {"pads": [1, 1, 1, 1], "group": groups}), BN,
                      ("Relu", ["bn"], ["y"], {})], {"x": [2, 8, 6, 6]}, ["y"], inits)
    assert "batch_norm" in h.ops_of(g)
    out = fold_batchnorm(g)
    assert sorted(h.ops_of(out)) == ["add", "conv2d", "relu"]
    h.assert_same(g, out)
    # the weight is a new (scaled) constant of the same shape, the shift a per-channel constant
    conv = next(n for n in out.nodes if n.op == "conv2d")
    assert out.constants[conv.inputs[1]].shape == (8, 8 // groups, 3, 3)
    add = next(n for n in out.nodes if n.op == "add")
    shift = next(v for v in add.inputs if v in out.constants)
    assert out.constants[shift].size == 8


def test_gemm_batchnorm_folds_into_the_dense_weight(h):
    inits = dict(w=h.rand(6, 10, seed=1), b=h.rand(6, seed=2), **_bn_inits(6))
    g = h.onnx_graph([("Gemm", ["x", "w", "b"], ["c"], {"transB": 1}), BN], {"x": [3, 10]}, ["bn"], inits)
    out = fold_batchnorm(g)
    assert sorted(h.ops_of(out)) == ["add", "dense"]
    h.assert_same(g, out)


def test_batchnorm_without_a_producer_to_fold_into_stays_affine(h):
    g = h.onnx_graph([("Relu", ["x"], ["c"], {}), BN], {"x": [1, 4, 3, 3]}, ["bn"], _bn_inits(4))
    out = fold_batchnorm(g)
    assert sorted(h.ops_of(out)) == ["add", "mul", "relu"]
    h.assert_same(g, out)


def test_conv_output_used_twice_is_not_folded(h):
    # the convolution's result is also a graph output: scaling its weight would change that output
    inits = dict(w=h.rand(4, 4, 1, 1, seed=1), **_bn_inits(4))
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {}), BN], {"x": [1, 4, 3, 3]}, ["bn", "c"], inits)
    out = fold_batchnorm(g)
    assert "mul" in h.ops_of(out)
    h.assert_same(g, out)


def test_two_batchnorms_in_a_row_fold_completely(h):
    inits = dict(w=h.rand(4, 4, 3, 3, seed=1), **_bn_inits(4), **{k + "2": v for k, v in _bn_inits(4, seed=5).items()})
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}), BN,
                      ("BatchNormalization", ["bn", "gamma2", "beta2", "mean2", "var2"], ["y"], {})],
                     {"x": [1, 4, 5, 5]}, ["y"], inits)
    out = fold_batchnorm(g)
    assert sorted(h.ops_of(out)) == ["add", "conv2d"]
    h.assert_same(g, out)


def test_batchnorm_with_runtime_statistics(h):
    # statistics that are graph inputs cannot be folded; the decomposition computes them in the graph
    g = h.onnx_graph([("Abs", ["v"], ["var"], {}), ("BatchNormalization", ["x", "gamma", "beta", "mean", "var"],
                                                    ["y"], {})],
                     {"x": [2, 3, 4, 4], "mean": [3], "v": [3]}, ["y"],
                     {k: v for k, v in _bn_inits(3).items() if k in ("gamma", "beta")})
    out = fold_batchnorm(g)
    assert "batch_norm" not in h.ops_of(out)
    h.assert_same(g, out)


def test_fold_batchnorm_output_has_no_dead_nodes(h):
    inits = dict(w=h.rand(8, 8, 3, 3, seed=1), **_bn_inits(8))
    g = h.onnx_graph([("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}), BN], {"x": [1, 8, 4, 4]}, ["bn"], inits)
    out = fold_batchnorm(g)
    assert len(eliminate_dead_code(out).nodes) == len(out.nodes)
    assert set(out.constants) == {v for n in out.nodes for v in n.inputs if v in out.constants}
