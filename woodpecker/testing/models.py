"""Tiny ONNX models for tests: a few kernels of each common family, compiled in seconds."""

from __future__ import annotations

import numpy as np
import onnx

from woodpecker.models.builder import OnnxBuilder


def tiny_cnn(image_size: int = 16, channels: int = 16, seed: int = 0) -> onnx.ModelProto:
    """conv-bn-relu, conv + residual add + relu, max pool, global pool, dense: five kernel families."""
    b = OnnxBuilder("tiny_cnn", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    y = b.relu(b.bn(b.conv(x, 3, channels, 3), channels))
    z = b.bn(b.conv(y, channels, channels, 3), channels)
    y = b.relu(b.op("Add", [z, y]))
    y = b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    y = b.linear(y, channels, 10)
    return b.model(y, [1, 10])


def tiny_mlp(rows: int = 8, width: int = 32, seed: int = 0) -> onnx.ModelProto:
    """MatMul + bias + GELU + MatMul + residual + LayerNormalization + Softmax (a transformer block's pieces)."""
    b = OnnxBuilder("tiny_mlp", seed)
    x = b.input("input", [1, rows, width])
    w1 = b.const(b.rng.normal(0, 0.2, (width, 2 * width)).astype(np.float32))
    w2 = b.const(b.rng.normal(0, 0.2, (2 * width, width)).astype(np.float32))
    h = b.op("Add", [b.op("MatMul", [x, w1]), b.const(np.zeros(2 * width, np.float32))])
    h = b.op("Relu", [h])
    y = b.op("Add", [b.op("MatMul", [h, w2]), x])
    y = b.op("LayerNormalization", [y, b.const(np.ones(width, np.float32)), b.const(np.zeros(width, np.float32))],
             axis=-1, epsilon=1e-5)
    y = b.op("Softmax", [y], axis=-1)
    return b.model(y, [1, rows, width])
