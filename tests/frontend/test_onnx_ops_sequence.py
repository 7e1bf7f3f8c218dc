"""The ONNX sequence operators as lists fixed at compile time (woodpecker/frontend/onnx_ops_sequence.py), against
onnxruntime; and the one-line refusals where a sequence would have to exist at run time."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import woodpecker
from onnx_check import check, make_model, node, rand
from woodpecker.errors import UnsupportedOpError

X, Y, Z = rand((2, 3, 4), 1), rand((2, 3, 4), 2), rand((2, 3, 4), 3)


def _pos(value: int) -> np.ndarray:
    return np.array(value, dtype=np.int64)


@pytest.mark.parametrize("pos_erase,pos_insert,pos_at", [(1, 0, 2), (-3, -1, -1), (0, 2, 1), (2, 1, 0)])
def test_construct_erase_insert_at(pos_erase, pos_insert, pos_at):
    nodes = [node("SequenceConstruct", ["x", "y", "z"], ["s1"]),
             node("SequenceErase", ["s1", "pe"], ["s2"]),
             node("SequenceInsert", ["s2", "x", "pi"], ["s3"]),
             node("SequenceAt", ["s3", "pa"], ["y_out"])]
    model = make_model(nodes, {"x": X, "y": Y, "z": Z}, outputs=["y_out"],
                       initializers={"pe": _pos(pos_erase), "pi": _pos(pos_insert), "pa": _pos(pos_at)})
    check(model, {"x": X, "y": Y, "z": Z})


def test_empty_then_inserts_of_different_shapes():
    a, b, c = rand((2, 3), 1), rand((1, 3), 2), rand((4, 3), 3)
    nodes = [node("SequenceEmpty", [], ["s0"]),
             node("SequenceInsert", ["s0", "a"], ["s1"]),
             node("SequenceInsert", ["s1", "b"], ["s2"]),
             node("SequenceInsert", ["s2", "c", "p"], ["s3"]),  # [a, c, b]
             node("SequenceAt", ["s3", "q"], ["y"]),
             node("ConcatFromSequence", ["s3"], ["cat"], axis=0),
             node("SequenceLength", ["s3"], ["n"])]
    model = make_model(nodes, {"a": a, "b": b, "c": c}, outputs={"y": TensorProto.FLOAT, "cat": TensorProto.FLOAT,
                                                                    "n": TensorProto.INT64},
                       initializers={"p": _pos(1), "q": _pos(-2)})
    got = check(model, {"a": a, "b": b, "c": c})
    np.testing.assert_array_equal(got["y"], c)
    assert got["n"] == 3


@pytest.mark.parametrize("axis,new_axis", [(1, 0), (-1, 0), (0, 1), (-1, 1), (3, 1)])
def test_concat_from_sequence(axis, new_axis):
    nodes = [node("SequenceConstruct", ["x", "y", "z"], ["s"]),
             node("ConcatFromSequence", ["s"], ["out"], axis=axis, new_axis=new_axis)]
    check(make_model(nodes, {"x": X, "y": Y, "z": Z}, outputs=["out"]), {"x": X, "y": Y, "z": Z})


@pytest.mark.parametrize("split,attrs", [
    (None, dict(axis=-1)),                        # pieces of one, axis kept
    (None, dict(axis=0, keepdims=0)),             # pieces of one, axis dropped
    (np.array(2, dtype=np.int64), dict(axis=1)),  # pieces of 2: sizes 2, 1
    (np.array([1, 3], dtype=np.int64), dict(axis=2)),
])
def test_split_to_sequence_then_read_back(split, attrs):
    inputs = ["x"] if split is None else ["x", "split"]
    nodes = [node("SplitToSequence", inputs, ["s"], **attrs),
             node("SequenceAt", ["s", "last"], ["tail"]),
             node("SequenceLength", ["s"], ["n"]),
             node("ConcatFromSequence", ["s"], ["whole"], axis=attrs.get("axis", 0),
                  new_axis=1 - attrs.get("keepdims", 1))]
    inits = {"last": _pos(-1)} if split is None else {"last": _pos(-1), "split": split}
    model = make_model(nodes, {"x": X}, outputs={"tail": TensorProto.FLOAT, "n": TensorProto.INT64,
                                                  "whole": TensorProto.FLOAT}, initializers=inits)
    got = check(model, {"x": X})
    np.testing.assert_array_equal(got["whole"], X)  # split then concatenated back is the input, exactly


@pytest.mark.parametrize("pos", [0, 2, -1, -3])
def test_sequence_at_run_time_position(pos):
    """Elements of one shape: the position may be a run-time input (a gather over the stacked elements)."""
    nodes = [node("SequenceConstruct", ["x", "y", "z"], ["s"]), node("SequenceAt", ["s", "p"], ["out"])]
    model = make_model(nodes, {"x": X, "y": Y, "z": Z, "p": _pos(pos)}, outputs=["out"])
    compiled = woodpecker.compile(model, vendor=False)
    got = compiled.run({"x": X, "y": Y, "z": Z, "p": _pos(pos)})["out"]
    np.testing.assert_array_equal(got, [X, Y, Z][pos])


def test_refusals_are_one_line():
    a, b = rand((2, 3), 1), rand((1, 3), 2)
    # a run-time position into differently shaped elements
    nodes = [node("SequenceConstruct", ["a", "b"], ["s"]), node("SequenceAt", ["s", "p"], ["out"])]
    model = make_model(nodes, {"a": a, "b": b, "p": _pos(0)}, outputs=["out"], input_dims={"p": []})
    with pytest.raises(UnsupportedOpError, match=r"SequenceAt node .*run-time position .*constant"):
        woodpecker.compile(model, vendor=False)
    # a constant position out of range
    nodes = [node("SequenceConstruct", ["a", "b"], ["s"]), node("SequenceAt", ["s", "p"], ["out"])]
    model = make_model(nodes, {"a": a, "b": b}, outputs=["out"], initializers={"p": _pos(5)})
    with pytest.raises(UnsupportedOpError, match=r"position 5 is out of range for a sequence of length 2"):
        woodpecker.compile(model, vendor=False)
    # stacking elements of different shapes
    nodes = [node("SequenceConstruct", ["a", "b"], ["s"]), node("ConcatFromSequence", ["s"], ["out"], axis=0, new_axis=1)]
    model = make_model(nodes, {"a": a, "b": b}, outputs=["out"])
    with pytest.raises(UnsupportedOpError, match=r"ConcatFromSequence node .*new_axis=1 needs sequence elements of one shape"):
        woodpecker.compile(model, vendor=False)


def test_a_sequence_output_is_refused_in_one_line():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("SplitToSequence", ["x"], ["s"], name="split")], "g", [x], [s])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpError, match=r"output 's' is a sequence"):
        woodpecker.compile(model, vendor=False)


def test_a_sequence_input_is_refused_in_one_line():
    s = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0, name="cat")], "g", [s], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpError, match=r"input 's' is of sequence type"):
        woodpecker.compile(model, vendor=False)


def test_a_sequence_where_a_tensor_is_expected():
    nodes = [node("SequenceConstruct", ["x", "y"], ["s"]), node("Relu", ["s"], ["out"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    graph = helper.make_graph(nodes, "g", [x, helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpError, match=r"Relu node 'relu_0': value 's' is a sequence"):
        woodpecker.compile(model, vendor=False)
