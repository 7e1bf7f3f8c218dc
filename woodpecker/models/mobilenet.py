"""MobileNetV2 (Sandler et al. 2018): inverted residuals with depthwise convolutions and ReLU6; MobileNetV3-Large
(Howard et al. 2019): the same blocks with squeeze-excite and hard-swish. Random weights."""

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


# MobileNetV3-Large, Table 1 of the paper: kernel, expanded channels, out channels, squeeze-excite, activation
# ("RE" ReLU, "HS" hard-swish), stride
V3_LARGE = [
    (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1),
]


def _divisible8(v: float) -> int:
    """torchvision's _make_divisible(v, 8): the nearest multiple of 8, never more than 10 % below v."""
    out = max(8, int(v + 4) // 8 * 8)
    return out + 8 if out < 0.9 * v else out


def _act(b: OnnxBuilder, x: str, kind: str) -> str:
    return b.relu(x) if kind == "RE" else b.op("HardSwish", [x])


def _squeeze_excite(b: OnnxBuilder, x: str, c: int) -> str:
    squeeze = _divisible8(c // 4)
    s = b.op("GlobalAveragePool", [x])
    s = b.relu(b.conv(s, c, squeeze, 1, 1, 0, bias=True))
    s = b.conv(s, squeeze, c, 1, 1, 0, bias=True)
    s = b.op("HardSigmoid", [s], alpha=1.0 / 6.0, beta=0.5)  # torch's hardsigmoid: relu6(x + 3) / 6
    return b.op("Mul", [x, s])


def mobilenet_v3(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """MobileNetV3-Large 1.0x, torchvision layout."""
    b = OnnxBuilder("mobilenet_v3", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = _act(b, b.bn(b.conv(x, 3, 16, 3, 2), 16), "HS")
    cin = 16
    for k, hidden, c, se, act, stride in V3_LARGE:
        h = y
        if hidden != cin:
            h = _act(b, b.bn(b.conv(h, cin, hidden, 1, 1, 0), hidden), act)
        h = _act(b, b.bn(b.conv(h, hidden, hidden, k, stride, groups=hidden), hidden), act)
        if se:
            h = _squeeze_excite(b, h, hidden)
        h = b.bn(b.conv(h, hidden, c, 1, 1, 0), c)
        y = b.op("Add", [h, y]) if stride == 1 and cin == c else h
        cin = c
    y = _act(b, b.bn(b.conv(y, cin, 6 * cin, 1, 1, 0), 6 * cin), "HS")
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    y = b.op("HardSwish", [b.linear(y, 6 * cin, 1280)])
    y = b.linear(y, 1280, num_classes)
    return b.model(y, [1, num_classes])
