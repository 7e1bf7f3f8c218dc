"""MobileNetV2 (Sandler et al. 2018): inverted residuals with depthwise convolutions and ReLU6, random weights."""

from __future__ import annotations

import onnx

from woodpecker.models.builder import OnnxBuilder

# expansion t, channels c, repeats n, stride s (Table 2 of the paper)
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = OnnxBuilder("mobilenet_v2", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = b.relu6(b.bn(b.conv(x, 3, 32, 3, 2), 32))
    cin = 32
    for t, c, n, s in SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            h = y
            if t != 1:
                h = b.relu6(b.bn(b.conv(h, cin, hidden, 1, 1, 0), hidden))
            h = b.relu6(b.bn(b.conv(h, hidden, hidden, 3, stride, groups=hidden), hidden))
            h = b.bn(b.conv(h, hidden, c, 1, 1, 0), c)
            y = b.op("Add", [h, y]) if stride == 1 and cin == c else h
            cin = c
    y = b.relu6(b.bn(b.conv(y, cin, 1280, 1, 1, 0), 1280))
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    y = b.linear(y, 1280, num_classes)
    return b.model(y, [1, num_classes])
