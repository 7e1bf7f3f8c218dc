"""DenseNet-121 (Huang et al. 2017), torchvision layout: dense blocks whose layers each read the concatenation of
all earlier feature maps of the block (BN-ReLU-Conv1x1-BN-ReLU-Conv3x3, growth rate 32), transition layers
(BN-ReLU-Conv1x1-AvgPool 2x2) halving channels and size between blocks. Random weights."""

from __future__ import annotations

import onnx

from woodpecker.models.builder import OnnxBuilder

GROWTH = 32
BOTTLENECK = 4  # the 1x1 conv of each dense layer widens to BOTTLENECK * GROWTH channels
BLOCKS_121 = (6, 12, 24, 16)


def _dense_layer(b: OnnxBuilder, features: list[str], cin: int) -> str:
    # torch.cat(prev_features, 1) in torchvision's export: one Concat over every earlier map of the block
    x = features[0] if len(features) == 1 else b.op("Concat", features, axis=1)
    width = BOTTLENECK * GROWTH
    y = b.conv(b.relu(b.bn(x, cin)), cin, width, 1, 1, 0)
    return b.conv(b.relu(b.bn(y, width)), width, GROWTH, 3)


def _transition(b: OnnxBuilder, x: str, cin: int) -> str:
    y = b.conv(b.relu(b.bn(x, cin)), cin, cin // 2, 1, 1, 0)
    return b.op("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])


def densenet121(image_size: int = 224, num_classes: int = 1000, seed: int = 0,
                blocks: tuple[int, ...] = BLOCKS_121) -> onnx.ModelProto:
    """`blocks`: dense layers per block (DenseNet-121's by default; fewer make a quick test of the same family)."""
    b = OnnxBuilder("densenet121", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = b.relu(b.bn(b.conv(x, 3, 64, 7, 2, 3), 64))
    y = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = 64
    for i, n_layers in enumerate(blocks):
        features = [y]
        for j in range(n_layers):
            features.append(_dense_layer(b, features, c + j * GROWTH))
        y = b.op("Concat", features, axis=1)
        c += n_layers * GROWTH
        if i < len(blocks) - 1:
            y = _transition(b, y, c)
            c //= 2
    y = b.relu(b.bn(y, c))
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    y = b.linear(y, c, num_classes)
    return b.model(y, [1, num_classes])
