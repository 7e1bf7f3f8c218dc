"""api.compile is one pipeline: the model is parsed, imported and lowered once, also when it tunes first, and the
target's build makes the runnable model."""

from __future__ import annotations

import onnx

import woodpecker
from woodpecker.testing.models import tiny_cnn


def test_compile_with_trials_imports_and_lowers_the_model_once(tmp_path, monkeypatch):
    import woodpecker.frontend.onnx as frontend
    import woodpecker.lowering.model as lowering
    import woodpecker.tuner as tuner

    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_cnn(), path)
    calls = {"parse": 0, "import": 0, "lower": 0}
    tuned = {}
    real_load, real_import, real_lower = onnx.load, frontend.import_onnx, lowering.lower_graph

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    def spy_tune(model, target, **kwargs):  # what compile hands the tuner, without measuring anything
        tuned.update(kwargs, model=model, target=target)

    monkeypatch.setattr(onnx, "load", counting("parse", real_load))
    monkeypatch.setattr(frontend, "import_onnx", counting("import", real_import))
    monkeypatch.setattr(lowering, "lower_graph", counting("lower", real_lower))
    monkeypatch.setattr(tuner, "tune", spy_tune)
    cm = woodpecker.compile(str(path), trials=4, db=str(tmp_path / "records.db"), vendor=False)
    assert calls == {"parse": 1, "import": 1, "lower": 1}, calls
    assert tuned["trials"] == 4 and tuned["lowered"] is not None
    assert {k.key for k in cm.kernels} == set(tuned["lowered"].tasks)  # the tuned tasks are the built ones


def test_a_model_error_names_the_file(tmp_path):
    import pytest
    from onnx import TensorProto, helper

    from woodpecker.errors import WoodpeckerError

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 99)]), path)
    with pytest.raises(WoodpeckerError, match=r"bad\.onnx: opset 99"):  # parsed once, still named by its file
        woodpecker.compile(str(path), vendor=False)
