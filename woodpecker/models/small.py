"""Smaller CNN families for operator coverage: SqueezeNet 1.1 (fire modules, concat) and ShuffleNetV2
(channel split, channel shuffle, depthwise convolutions)."""

from __future__ import annotations

import numpy as np
import onnx

from woodpecker.models.builder import OnnxBuilder


def _fire(b: OnnxBuilder, x: str, cin: int, squeeze: int, expand: int) -> str:
    s = b.relu(b.conv(x, cin, squeeze, 1, 1, 0, bias=True))
    e1 = b.relu(b.conv(s, squeeze, expand, 1, 1, 0, bias=True))
    e3 = b.relu(b.conv(s, squeeze, expand, 3, 1, 1, bias=True))
    return b.op("Concat", [e1, e3], axis=1)


def squeezenet(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = OnnxBuilder("squeezenet", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = b.relu(b.conv(x, 3, 64, 3, 2, 0, bias=True))
    y = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    y = _fire(b, y, 64, 16, 64)
    y = _fire(b, y, 128, 16, 64)
    y = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    y = _fire(b, y, 128, 32, 128)
    y = _fire(b, y, 256, 32, 128)
    y = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    y = _fire(b, y, 256, 48, 192)
    y = _fire(b, y, 384, 48, 192)
    y = _fire(b, y, 384, 64, 256)
    y = _fire(b, y, 512, 64, 256)
    y = b.op("Dropout", [y])
    y = b.relu(b.conv(y, 512, num_classes, 1, 1, 0, bias=True))
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    return b.model(y, [1, num_classes])


def _shuffle(b: OnnxBuilder, x: str, c: int, hw: int) -> str:
    shape = b.const(np.array([1, 2, c // 2, hw, hw], np.int64), "shape")
    y = b.op("Reshape", [x, shape])
    y = b.op("Transpose", [y], perm=[0, 2, 1, 3, 4])
    back = b.const(np.array([1, c, hw, hw], np.int64), "shape")
    return b.op("Reshape", [y, back])


def _unit(b: OnnxBuilder, x: str, cin: int, cout: int, stride: int, hw: int) -> tuple[str, int]:
    half = cout // 2
    if stride == 1:
        left, right = b.op("Split", [x, b.const(np.array([cin // 2, cin // 2], np.int64), "split")], n_out=2, axis=1)
        r = b.relu(b.bn(b.conv(right, cin // 2, half, 1, 1, 0), half))
        r = b.bn(b.conv(r, half, half, 3, 1, groups=half), half)
        r = b.relu(b.bn(b.conv(r, half, half, 1, 1, 0), half))
        out_hw = hw
    else:
        left = b.bn(b.conv(x, cin, cin, 3, 2, groups=cin), cin)
        left = b.relu(b.bn(b.conv(left, cin, half, 1, 1, 0), half))
        r = b.relu(b.bn(b.conv(x, cin, half, 1, 1, 0), half))
        r = b.bn(b.conv(r, half, half, 3, 2, groups=half), half)
        r = b.relu(b.bn(b.conv(r, half, half, 1, 1, 0), half))
        out_hw = (hw + 1) // 2
    y = b.op("Concat", [left, r], axis=1)
    return _shuffle(b, y, cout, out_hw), out_hw


def shufflenet_v2(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """ShuffleNetV2 1.0x (Ma et al. 2018)."""
    b = OnnxBuilder("shufflenet_v2", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = b.relu(b.bn(b.conv(x, 3, 24, 3, 2), 24))
    y = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    hw = ((image_size + 1) // 2 + 1) // 2
    cin = 24
    for cout, repeats in ((116, 4), (232, 8), (464, 4)):
        for i in range(repeats):
            y, hw = _unit(b, y, cin, cout, 2 if i == 0 else 1, hw)
            cin = cout
    y = b.relu(b.bn(b.conv(y, cin, 1024, 1, 1, 0), 1024))
    y = b.op("ReduceMean", [y], axes=[2, 3], keepdims=0)
    y = b.linear(y, 1024, num_classes)
    return b.model(y, [1, num_classes])
