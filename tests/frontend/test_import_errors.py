"""What the ONNX frontend tells a user about a model it cannot take: one-line errors naming the op, node, opset or
file at fault; and how symbolic input dimensions are resolved."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import woodpecker
from onnx_check import check, make_model, node, rand
from woodpecker.errors import ModelLoadError, ShapeError, UnsupportedOpError, WoodpeckerError


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def _graph_model(nodes, inputs, outputs, initializers=(), opsets=(("", 13),)) -> onnx.ModelProto:
    """A model built without the checker (custom domains and unknown ops are what these tests are about)."""
    graph = helper.make_graph(nodes, "bad", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return model


# ----------------------------------------------------------------------------------------------------------------
# unsupported operators


def test_unsupported_op_names_op_node_and_opset():
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 4])
    out = helper.make_tensor_value_info("sel", TensorProto.INT64, None)
    nms = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="nms_head")
    model = _graph_model([nms], [boxes, scores], [out], opsets=(("", 11),))
    with pytest.raises(UnsupportedOpError) as err:
        woodpecker.compile(model)
    message = _one_line(err)
    assert "NonMaxSuppression" in message and "nms_head" in message and "opset 11" in message


def test_custom_domain_op_is_unsupported():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    custom = helper.make_node("FancyAct", ["x"], ["y"], name="fancy_1", domain="com.example")
    model = _graph_model([custom], [x], [y], opsets=(("", 17), ("com.example", 1)))
    with pytest.raises(UnsupportedOpError) as err:
        woodpecker.compile(model)
    message = _one_line(err)
    assert "com.example.FancyAct" in message and "fancy_1" in message and "opset 17" in message


def test_unsupported_attribute_names_node_and_opset():
    x = rand((1, 2, 3, 4, 4, 4))  # a 4-D convolution: 1-D to 3-D are imported
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv4d_0")], {"x": x},
                       initializers={"w": rand((4, 2, 1, 1, 1, 1), 1)})
    with pytest.raises(UnsupportedOpError) as err:
        woodpecker.compile(model)
    message = _one_line(err)
    assert "Conv" in message and "conv4d_0" in message and "opset 13" in message and "rank 6" in message


def test_runtime_value_where_a_constant_is_needed():
    feeds = {"x": rand((2, 6)), "shape": np.array([3, 4], np.int64)}
    model = make_model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="dyn_reshape")], feeds)
    with pytest.raises(UnsupportedOpError) as err:
        woodpecker.compile(model)
    message = _one_line(err)
    assert "Reshape" in message and "dyn_reshape" in message and "constant" in message and "opset 13" in message


def test_opset_out_of_range():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opsets=(("", 99),))
    with pytest.raises(UnsupportedOpError) as err:
        woodpecker.compile(model)
    assert "opset 99" in _one_line(err)


def test_operator_version_too_old():
    """Opset 5 means Relu-1 (with consumed_inputs): refused by name and version; Relu-6 (opset 6) imports."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y], opsets=(("", 5),))
    with pytest.raises(UnsupportedOpError) as err:
        woodpecker.compile(model)
    message = _one_line(err)
    assert "Relu node 'r'" in message and "version 1" in message and "opset 5" in message
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y], opsets=(("", 6),))
    data = rand((2,))
    np.testing.assert_array_equal(woodpecker.compile(model).run({"x": data})["y"], np.maximum(data, 0))


def test_unsupported_input_dtype():
    # (float16 and the other narrow types are taken: tests/frontend/test_dtypes_narrow.py)
    x = helper.make_tensor_value_info("x", TensorProto.COMPLEX64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.COMPLEX64, [2])
    model = _graph_model([helper.make_node("Identity", ["x"], ["y"])], [x], [y])
    with pytest.raises(UnsupportedOpError) as err:
        woodpecker.compile(model)
    message = _one_line(err)
    assert "'x'" in message and "COMPLEX64" in message


# ----------------------------------------------------------------------------------------------------------------
# files that are not models


def _valid_model_bytes() -> bytes:
    x = rand((1, 4, 8, 8))
    model = make_model([node("Conv", ["x", "w", "b"], pads=[1, 1, 1, 1])], {"x": x},
                       initializers={"w": rand((8, 4, 3, 3), 1), "b": rand((8,), 2)})
    return model.SerializeToString()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError) as err:
        woodpecker.compile(str(path))
    assert str(path) in _one_line(err)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError) as err:
        woodpecker.compile(path)
    assert str(path) in _one_line(err) and "empty" in str(err.value)


def test_directory(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        woodpecker.compile(tmp_path)
    assert str(tmp_path) in _one_line(err)


@pytest.mark.parametrize("fraction", [0.5, 0.25, 0.9])
def test_truncated_file(tmp_path, fraction):
    data = _valid_model_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError) as err:
        woodpecker.compile(path)
    assert str(path) in _one_line(err)


@pytest.mark.parametrize("content", [
    b"hello, this is a text file and not a model\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
    b'{"format": "json", "layers": [1, 2, 3]}',
    bytes(range(256)) * 4,
])
def test_not_an_onnx_file(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as err:
        woodpecker.compile(path)
    assert str(path) in _one_line(err)


def test_valid_file_loads(tmp_path):
    """The control for the tests above: the same bytes, whole, compile and run."""
    path = tmp_path / "ok.onnx"
    path.write_bytes(_valid_model_bytes())
    compiled = woodpecker.compile(path)
    out = compiled.run({"x": rand((1, 4, 8, 8))})
    assert out["y"].shape == (1, 8, 8, 8)


def test_errors_are_woodpecker_errors(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(WoodpeckerError):
        woodpecker.compile(path)


# ----------------------------------------------------------------------------------------------------------------
# symbolic dimensions


def _symbolic_model() -> onnx.ModelProto:
    x = rand((2, 3, 4, 4))
    return make_model([node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Relu", ["c"], ["r"]),
                       node("GlobalAveragePool", ["r"], ["g"]), node("Flatten", ["g"], ["f"]),
                       node("Gemm", ["f", "fc"], transB=1)],
                      {"x": x}, initializers={"w": rand((8, 3, 3, 3), 1), "fc": rand((5, 8), 2)},
                      input_dims={"x": ["batch", 3, 4, 4]})


def test_input_shapes_override_symbolic_batch():
    model = _symbolic_model()
    compiled = check(model, {"x": rand((3, 3, 4, 4))}, atol=1e-4, input_shapes={"x": [3, 3, 4, 4]})
    assert compiled["y"].shape == (3, 5)


def test_symbolic_dim_defaults_to_one(caplog):
    model = _symbolic_model()
    with caplog.at_level(logging.WARNING, logger="woodpecker.frontend"):
        compiled = woodpecker.compile(model)
    assert compiled.inputs[0].shape == (1, 3, 4, 4)
    assert any("batch" in r.getMessage() and "using 1" in r.getMessage() for r in caplog.records)
    check(model, {"x": rand((1, 3, 4, 4))}, atol=1e-4)


def test_input_shapes_wrong_rank():
    with pytest.raises(ShapeError) as err:
        woodpecker.compile(_symbolic_model(), input_shapes={"x": [3, 3, 4]})
    assert "'x'" in _one_line(err)


def test_input_shapes_unknown_name():
    with pytest.raises(ShapeError) as err:
        woodpecker.compile(_symbolic_model(), input_shapes={"image": [1, 3, 4, 4]})
    assert "image" in _one_line(err)


def test_input_without_shape_needs_input_shapes():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    with pytest.raises(ShapeError) as err:
        woodpecker.compile(model)
    assert "input_shapes" in _one_line(err)
    compiled = woodpecker.compile(model, input_shapes={"x": [2, 5]})
    data = rand((2, 5))
    np.testing.assert_array_equal(compiled.run({"x": data})["y"], np.maximum(data, 0))


def test_initializer_listed_as_input():
    """Old exporters list the weights among the graph inputs too: they stay constants."""
    x = rand((2, 4))
    model = make_model([node("MatMul", ["x", "w"])], {"x": x}, initializers={"w": rand((4, 3), 1)})
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3]))
    compiled = woodpecker.compile(model)
    assert [t.name for t in compiled.inputs] == ["x"]
    np.testing.assert_allclose(compiled.run({"x": x})["y"], x @ numpy_helper.to_array(model.graph.initializer[0]),
                               rtol=1e-5, atol=1e-6)
