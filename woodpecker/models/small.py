"""Smaller CNN families for operator coverage: SqueezeNet 1.1 (fire modules, concat), ShuffleNetV2 (channel split,
channel shuffle, depthwise convolutions) and ShuffleNet v1 (grouped 1x1 convolutions, channel shuffle)."""

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


def _shuffle(b: OnnxBuilder, x: str, c: int, hw: int, groups: int = 2) -> str:
    shape = b.const(np.array([1, groups, c // groups, hw, hw], np.int64), "shape")
    y = b.op("Reshape", [x, shape])
    y = b.op("Transpose", [y], perm=[0, 2, 1, 3, 4])
    back = b.const(np.array([1, c, hw, hw], np.int64), "shape")
    return b.op("Reshape", [y, back])


def _stem(b: OnnxBuilder, image_size: int) -> tuple[str, int]:
    """Both ShuffleNets' stem: the image, a 3x3 stride-2 convolution to 24 channels, a 3x3 stride-2 max pool; (the
    value, its height and width)."""
    x = b.input("input", [1, 3, image_size, image_size])
    y = b.relu(b.bn(b.conv(x, 3, 24, 3, 2), 24))
    y = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    return y, ((image_size + 1) // 2 + 1) // 2


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
    y, hw = _stem(b, image_size)
    cin = 24
    for cout, repeats in ((116, 4), (232, 8), (464, 4)):
        for i in range(repeats):
            y, hw = _unit(b, y, cin, cout, 2 if i == 0 else 1, hw)
            cin = cout
    y = b.relu(b.bn(b.conv(y, cin, 1024, 1, 1, 0), 1024))
    y = b.op("ReduceMean", [y], axes=[2, 3], keepdims=0)
    y = b.linear(y, 1024, num_classes)
    return b.model(y, [1, num_classes])


def _unit_v1(b: OnnxBuilder, x: str, cin: int, cout: int, stride: int, groups: int, hw: int, first: bool):
    """A ShuffleNet v1 unit: grouped 1x1 (plain on the stage's first, 24-channel input) -> shuffle -> 3x3 depthwise
    -> grouped 1x1; added to the input, or concatenated with its 3x3 average pool where the unit downsamples."""
    mid = cout // 4
    out_c = cout - cin if stride == 2 else cout
    y = b.relu(b.bn(b.conv(x, cin, mid, 1, 1, 0, groups=1 if first else groups), mid))
    y = _shuffle(b, y, mid, hw, groups)
    y = b.bn(b.conv(y, mid, mid, 3, stride, groups=mid), mid)
    y = b.bn(b.conv(y, mid, out_c, 1, 1, 0, groups=groups), out_c)
    if stride == 2:
        pooled = b.op("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
        return b.relu(b.op("Concat", [pooled, y], axis=1)), (hw + 1) // 2
    return b.relu(b.op("Add", [x, y])), hw


def shufflenet_v1(image_size: int = 224, num_classes: int = 1000, groups: int = 3, seed: int = 0) -> onnx.ModelProto:
    """ShuffleNet v1 1.0x (Zhang et al. 2018), 3 groups by default (8: stages of 384/768/1536 channels)."""
    widths = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}
    b = OnnxBuilder("shufflenet_v1", seed)
    y, hw = _stem(b, image_size)
    cin = 24
    for stage, (cout, repeats) in enumerate(zip(widths[groups], (4, 8, 4))):
        for i in range(repeats):
            y, hw = _unit_v1(b, y, cin, cout, 2 if i == 0 else 1, groups, hw, first=stage == 0 and i == 0)
            cin = cout
    y = b.op("Flatten", [b.op("GlobalAveragePool", [y])], axis=1)
    y = b.linear(y, cin, num_classes)
    return b.model(y, [1, num_classes])
