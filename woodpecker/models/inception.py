"""GoogLeNet / Inception v1 (Szegedy et al. 2015) without the auxiliary heads, torchvision layout (every conv is
Conv-BN-ReLU, ceil-mode max pools) but with the paper's 5x5 convolution in the third branch. Random weights."""

from __future__ import annotations

import onnx

from woodpecker.models.builder import OnnxBuilder

# in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (Table 1 of the paper); "pool" is a 3x3 stride-2 max pool,
# "pool2" a 2x2 one
MODULES: list[tuple[int, ...] | str] = [
    (192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), "pool",
    (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64),
    (512, 112, 144, 288, 32, 64, 64), (528, 256, 160, 320, 32, 128, 128), "pool2",
    (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128),
]


def _conv(b: OnnxBuilder, x: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
    return b.relu(b.bn(b.conv(x, cin, cout, k, stride), cout))


def _max_pool(b: OnnxBuilder, x: str, k: int = 3, stride: int = 2) -> str:
    return b.op("MaxPool", [x], kernel_shape=[k, k], strides=[stride, stride], ceil_mode=1)


def _inception(b: OnnxBuilder, x: str, cin: int, c1: int, r3: int, c3: int, r5: int, c5: int, pp: int) -> str:
    b1 = _conv(b, x, cin, c1, 1)
    b2 = _conv(b, _conv(b, x, cin, r3, 1), r3, c3, 3)
    b3 = _conv(b, _conv(b, x, cin, r5, 1), r5, c5, 5)
    pooled = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    b4 = _conv(b, pooled, cin, pp, 1)
    return b.op("Concat", [b1, b2, b3, b4], axis=1)


def inception_v1(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = OnnxBuilder("inception_v1", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = _max_pool(b, _conv(b, x, 3, 64, 7, 2))
    y = _max_pool(b, _conv(b, _conv(b, y, 64, 64, 1), 64, 192, 3))
    c = 192
    for m in MODULES:
        if m == "pool":
            y = _max_pool(b, y)
        elif m == "pool2":  # torchvision's maxpool4 is 2x2 (the paper's 3x3 gives the same 7x7 at 224)
            y = _max_pool(b, y, 2)
        else:
            assert m[0] == c, (m, c)  # the table's input widths chain: each is the previous module's concat
            y = _inception(b, y, *m)
            c = m[1] + m[3] + m[5] + m[6]
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    y = b.linear(y, c, num_classes)
    return b.model(y, [1, num_classes])
