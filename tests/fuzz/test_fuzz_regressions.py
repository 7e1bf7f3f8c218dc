"""Mismatches the differential fuzzer found, minimised (scripts/fuzz.py --minimize) into fixed graphs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

import woodpecker


def _model(nodes, inputs, opset=17):
    graph = helper.make_graph(nodes, "regression", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                                    for n, s in inputs],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _agrees(model) -> None:
    cm = woodpecker.compile(model, vendor=False)
    feed = cm.random_inputs(seed=1)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_allclose(cm.run(feed)["o"], ref, rtol=1e-5, atol=1e-6)


def test_batched_matmul_of_unit_matrices_with_an_epilogue():
    """Fuzz seed 25 (MatMul of [4,1,1] by [4,1,1], then Softplus): the product has no reduction axis, so the
    producer block had no loop of its own after compute_at and the default schedule vectorized the shared
    parallel loop; every batch read the last batch's product."""
    for epilogue in ("Softplus", "Relu"):
        _agrees(_model([helper.make_node("MatMul", ["y", "z"], ["t"]), helper.make_node(epilogue, ["t"], ["o"])],
                       [("y", [4, 1, 1]), ("z", [4, 1, 1])]))
