"""3-D convolution and pooling, and ConvTranspose (woodpecker/frontend/onnx_ops_spatial.py), against onnxruntime."""

from __future__ import annotations

import pytest
from onnx import TensorProto

from onnx_check import check, make_model, node, rand
from woodpecker.errors import UnsupportedOpError

CONV3D_CASES = {
    # name: (x shape, w shape, attrs, with bias)
    "k3_pad1_bias": ((1, 2, 5, 6, 4), (3, 2, 3, 3, 3), dict(pads=[1, 1, 1, 1, 1, 1]), True),
    "no_bias_k1_depth": ((2, 3, 4, 5, 5), (4, 3, 1, 3, 3), dict(), False),
    "strides_dilations": ((1, 2, 9, 8, 7), (4, 2, 2, 3, 2), dict(strides=[2, 1, 2], dilations=[3, 2, 1]), True),
    "asymmetric_pads": ((1, 2, 4, 4, 4), (2, 2, 3, 2, 3), dict(pads=[0, 1, 2, 2, 0, 1]), True),
    "groups2": ((1, 4, 4, 5, 5), (6, 2, 2, 3, 3), dict(group=2, pads=[1, 1, 1, 1, 1, 1]), True),
    "depthwise_stride2": ((1, 3, 6, 6, 6), (3, 1, 3, 3, 3), dict(group=3, strides=[2, 2, 2]), False),
    "same_upper": ((1, 2, 5, 5, 4), (2, 2, 2, 3, 4), dict(auto_pad="SAME_UPPER", strides=[2, 1, 1]), True),
    "same_lower": ((1, 2, 5, 5, 4), (2, 2, 2, 3, 4), dict(auto_pad="SAME_LOWER"), True),
}


@pytest.mark.parametrize("case", list(CONV3D_CASES))
def test_conv3d(case):
    xs, ws, attrs, bias = CONV3D_CASES[case]
    inits = {"w": rand(ws, 1), "b": rand(ws[:1], 2)} if bias else {"w": rand(ws, 1)}
    model = make_model([node("Conv", ["x", "w", "b"] if bias else ["x", "w"], **attrs)], {"x": rand(xs)},
                       initializers=inits)
    check(model, {"x": rand(xs)}, atol=1e-4)


def test_conv3d_runtime_weight():
    x, w = rand((1, 2, 4, 4, 4)), rand((3, 2, 2, 2, 2), 1)
    model = make_model([node("Conv", ["x", "w"], pads=[0, 1, 0, 1, 0, 1])], {"x": x, "w": w})
    check(model, {"x": x, "w": w}, atol=1e-4)


POOL3D_CASES = {
    "max_default": ("MaxPool", (1, 2, 4, 6, 5), dict(kernel_shape=[2, 2, 2])),
    "max_pads_strides": ("MaxPool", (1, 2, 7, 6, 5), dict(kernel_shape=[3, 2, 3], strides=[2, 2, 1],
                                                          pads=[1, 0, 1, 1, 1, 0])),
    "max_ceil_dilations": ("MaxPool", (1, 1, 9, 8, 9), dict(kernel_shape=[2, 3, 2], strides=[3, 2, 2],
                                                            dilations=[2, 1, 2], ceil_mode=1)),
    "max_same_upper": ("MaxPool", (1, 2, 5, 5, 4), dict(kernel_shape=[3, 2, 3], strides=[2, 2, 2],
                                                        auto_pad="SAME_UPPER")),
    "avg_exclude_pad": ("AveragePool", (1, 2, 5, 6, 5), dict(kernel_shape=[3, 3, 2], pads=[1, 1, 0, 1, 1, 1])),
    "avg_include_pad": ("AveragePool", (1, 2, 5, 6, 5), dict(kernel_shape=[3, 3, 2], pads=[1, 1, 0, 1, 1, 1],
                                                             count_include_pad=1)),
    "avg_ceil_include_pad": ("AveragePool", (1, 1, 8, 7, 6), dict(kernel_shape=[3, 2, 2], strides=[2, 2, 3],
                                                                  pads=[1, 0, 1, 1, 1, 0], ceil_mode=1,
                                                                  count_include_pad=1)),
    "avg_ceil_exclude_pad": ("AveragePool", (1, 1, 8, 7, 6), dict(kernel_shape=[3, 2, 2], strides=[2, 2, 3],
                                                                  pads=[1, 0, 1, 1, 1, 0], ceil_mode=1)),
}


@pytest.mark.parametrize("case", list(POOL3D_CASES))
def test_pool3d(case):
    op, xs, attrs = POOL3D_CASES[case]
    model = make_model([node(op, ["x"], **attrs)], {"x": rand(xs)}, opset=19)
    check(model, {"x": rand(xs)})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool3d(op):
    x = rand((2, 3, 3, 4, 5))
    check(make_model([node(op, ["x"])], {"x": x}), {"x": x})


CONV_TRANSPOSE_CASES = {
    # name: (x shape, w shape [C, K/group, *kernel], attrs, with bias)
    "2d_default": ((1, 2, 3, 4), (2, 3, 3, 3), dict(), True),
    "2d_strides_pads": ((1, 2, 4, 3), (2, 2, 3, 3), dict(strides=[2, 3], pads=[1, 0, 1, 2]), True),
    "2d_output_padding": ((2, 1, 3, 3), (1, 2, 3, 3), dict(strides=[3, 2], output_padding=[1, 1]), False),
    "2d_dilations": ((1, 2, 4, 4), (2, 2, 2, 3), dict(dilations=[2, 3], pads=[1, 1, 0, 2]), True),
    "2d_group": ((1, 4, 3, 3), (4, 3, 2, 2), dict(group=2, strides=[2, 2]), True),
    "2d_depthwise": ((1, 3, 4, 4), (3, 1, 3, 3), dict(group=3, strides=[2, 2], pads=[1, 1, 1, 1]), True),
    "2d_large_pads_crop": ((1, 2, 5, 5), (2, 2, 3, 3), dict(pads=[3, 2, 2, 3]), False),
    "2d_output_shape_grows": ((1, 1, 3, 3), (1, 2, 3, 3), dict(strides=[3, 2], output_shape=[10, 8]), True),
    "2d_output_shape_crops": ((1, 1, 3, 3), (1, 2, 3, 3), dict(strides=[2, 2], output_shape=[6, 5]), True),
    "2d_same_upper": ((1, 1, 3, 4), (1, 2, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2]), True),
    "2d_same_lower": ((1, 1, 3, 4), (1, 2, 4, 3), dict(auto_pad="SAME_LOWER", strides=[2, 2]), True),
    "1d": ((2, 3, 5), (3, 2, 3), dict(strides=[2], pads=[1, 0], output_padding=[1]), True),
    "3d": ((1, 2, 3, 3, 2), (2, 2, 2, 3, 2), dict(strides=[2, 1, 2], pads=[0, 1, 1, 1, 0, 0]), True),
}


@pytest.mark.parametrize("case", list(CONV_TRANSPOSE_CASES))
def test_conv_transpose(case):
    xs, ws, attrs, bias = CONV_TRANSPOSE_CASES[case]
    group = attrs.get("group", 1)
    inits = {"w": rand(ws, 1), "b": rand((ws[1] * group,), 2)} if bias else {"w": rand(ws, 1)}
    model = make_model([node("ConvTranspose", ["x", "w", "b"] if bias else ["x", "w"], **attrs)], {"x": rand(xs)},
                       initializers=inits)
    check(model, {"x": rand(xs)}, atol=1e-4)


def test_conv_transpose_runtime_weight():
    x, w = rand((1, 2, 3, 3)), rand((2, 2, 3, 2), 1)
    model = make_model([node("ConvTranspose", ["x", "w"], strides=[2, 2])], {"x": x, "w": w})
    check(model, {"x": x, "w": w}, atol=1e-4)


def test_conv_transpose_refuses_output_shape_with_pads():
    # the specification derives the pads from output_shape; given both, runtimes disagree on the result
    x = rand((1, 1, 3, 3))
    model = make_model([node("ConvTranspose", ["x", "w"], strides=[2, 2], pads=[1, 1, 1, 1], output_shape=[5, 5])],
                       {"x": x}, initializers={"w": rand((1, 1, 3, 3), 1)})
    with pytest.raises(UnsupportedOpError, match="output_shape and non-zero pads"):
        check(model, {"x": x})


MAXPOOL_INDICES_CASES = {
    # name: (x shape, attrs)
    "pads": ((2, 3, 5, 5), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    "strides_storage_order": ((1, 2, 6, 5), dict(kernel_shape=[2, 2], strides=[2, 2], storage_order=1)),
    "dilations_asymmetric": ((1, 2, 7, 8), dict(kernel_shape=[2, 3], dilations=[2, 1], pads=[0, 1, 1, 0])),
    "ceil_mode_column_major": ((2, 1, 7, 6), dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1,
                                                  storage_order=1)),
    "1d": ((2, 2, 9), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
}


@pytest.mark.parametrize("case", list(MAXPOOL_INDICES_CASES))
@pytest.mark.parametrize("ties", [False, True])
def test_maxpool_indices(case, ties):
    xs, attrs = MAXPOOL_INDICES_CASES[case]
    x = rand(xs).round() if ties else rand(xs)  # rounded: many equal values, so the first maximum must be found
    model = make_model([node("MaxPool", ["x"], ["y", "indices"], **attrs)], {"x": x},
                       outputs={"y": TensorProto.FLOAT, "indices": TensorProto.INT64})
    check(model, {"x": x})


def test_maxpool_indices_3d_is_refused():
    x = rand((1, 1, 4, 4, 4))
    model = make_model([node("MaxPool", ["x"], ["y", "indices"], kernel_shape=[2, 2, 2])], {"x": x},
                       outputs={"y": TensorProto.FLOAT, "indices": TensorProto.INT64})
    with pytest.raises(UnsupportedOpError, match="Indices output of a 3-D MaxPool"):
        check(model, {"x": x})
