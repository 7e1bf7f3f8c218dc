"""The PyTorch baseline's replay of the zoo's ONNX graphs (checked on the CPU against onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the `torch` extra, which CI installs; the device always has it

from woodpecker.devicekit.artifacts import build_proto, seeded_inputs
from woodpecker.devicekit.torch_baseline import Unsupported, graph_fn


@pytest.mark.parametrize("name", ["tiny_cnn", "squeezenet"])
def test_replay_matches_onnxruntime(name):
    import onnxruntime as ort

    proto = build_proto(name)
    fn, names = graph_fn(proto, "cpu")
    feeds = seeded_inputs(proto)
    with torch.inference_mode():
        got = fn(*[torch.from_numpy(feeds[n]) for n in names])[0].numpy()
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) < 1e-4


def test_an_operator_it_does_not_know_is_reported():
    from onnx import TensorProto, helper

    node = helper.make_node("Erf", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(Unsupported, match="operator Erf"):
        graph_fn(helper.make_model(graph), "cpu")
