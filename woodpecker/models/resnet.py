"""ResNet-18 and ResNet-50 (He et al. 2016) and ResNeXt-50 32x4d (Xie et al. 2017), torchvision layout, random
weights."""

from __future__ import annotations

import onnx

from woodpecker.models.builder import OnnxBuilder


def _basic(b: OnnxBuilder, x: str, cin: int, cout: int, stride: int) -> str:
    y = b.relu(b.bn(b.conv(x, cin, cout, 3, stride), cout))
    y = b.bn(b.conv(y, cout, cout, 3), cout)
    skip = x if stride == 1 and cin == cout else b.bn(b.conv(x, cin, cout, 1, stride, 0), cout)
    return b.relu(b.op("Add", [y, skip]))


def _bottleneck(b: OnnxBuilder, x: str, cin: int, planes: int, stride: int, groups: int = 1,
                width_per_group: int = 64) -> str:
    cout = planes * 4
    width = planes * width_per_group // 64 * groups  # torchvision: ResNeXt widens the grouped 3x3 convolution
    y = b.relu(b.bn(b.conv(x, cin, width, 1, 1, 0), width))
    y = b.relu(b.bn(b.conv(y, width, width, 3, stride, groups=groups), width))
    y = b.bn(b.conv(y, width, cout, 1, 1, 0), cout)
    skip = x if stride == 1 and cin == cout else b.bn(b.conv(x, cin, cout, 1, stride, 0), cout)
    return b.relu(b.op("Add", [y, skip]))


def _resnet(name: str, blocks: list[int], bottleneck: bool, image_size: int, num_classes: int, seed: int,
            groups: int = 1, width_per_group: int = 64) -> onnx.ModelProto:
    b = OnnxBuilder(name, seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = b.relu(b.bn(b.conv(x, 3, 64, 7, 2, 3), 64))
    y = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, n in enumerate(blocks):
        width = 64 * 2**stage
        for i in range(n):
            stride = 2 if i == 0 and stage > 0 else 1
            if bottleneck:
                y = _bottleneck(b, y, cin, width, stride, groups, width_per_group)
                cin = width * 4
            else:
                y = _basic(b, y, cin, width, stride)
                cin = width
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    y = b.linear(y, cin, num_classes)
    return b.model(y, [1, num_classes])


def resnet18(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    return _resnet("resnet18", [2, 2, 2, 2], False, image_size, num_classes, seed)


def resnet50(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    return _resnet("resnet50", [3, 4, 6, 3], True, image_size, num_classes, seed)


def resnext50(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """ResNeXt-50 32x4d: ResNet-50's bottlenecks with a 3x3 convolution of 32 groups of 4 * 2**stage channels."""
    return _resnet("resnext50", [3, 4, 6, 3], True, image_size, num_classes, seed, groups=32, width_per_group=4)
