"""Plain convolution stacks with large fully connected heads: AlexNet (Krizhevsky et al. 2012) and VGG-19
(Simonyan & Zisserman 2015), torchvision layout (conv with bias, ReLU, no batch norm, dropout left out as in an
inference export). Their heads are weight-bound: 9216x4096 (AlexNet) and 25088x4096 (VGG-19) Gemms at 224x224.
Random weights."""

from __future__ import annotations

import onnx

from woodpecker.models.builder import OnnxBuilder

# VGG configuration "E" (19 weight layers): output channels of each 3x3 conv, "M" a 2x2 stride-2 max pool
VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def _classifier(b: OnnxBuilder, x: str, c: int, hw: int, num_classes: int) -> str:
    """Flatten, then Linear-ReLU-Linear-ReLU-Linear (the 4096-wide head). torchvision's AdaptiveAvgPool2d((7, 7)) or
    ((6, 6)) before it is the identity at 224x224 and is left out, so a smaller input gets a narrower first Gemm."""
    y = b.op("Flatten", [x], axis=1)
    y = b.relu(b.linear(y, c * hw * hw, 4096))
    y = b.relu(b.linear(y, 4096, 4096))
    return b.linear(y, 4096, num_classes)


def _window_out(model: str, image_size: int, size: int, k: int, stride: int, pad: int = 0) -> int:
    """Output size of a k-wide window; an input too small for the stack is refused, not built into a broken model."""
    from woodpecker.errors import ModelLoadError

    if size + 2 * pad < k:
        raise ModelLoadError(f"{model}: image_size {image_size} is too small (a {k}x{k} window meets a "
                             f"{size + 2 * pad}x{size + 2 * pad} map)")
    return (size + 2 * pad - k) // stride + 1


def alexnet(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = OnnxBuilder("alexnet", seed)
    x = b.input("input", [1, 3, image_size, image_size])
    hw = _window_out("alexnet", image_size, image_size, 11, 4, 2)
    y = b.relu(b.conv(x, 3, 64, 11, 4, 2, bias=True))
    y, hw = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2]), _window_out("alexnet", image_size, hw, 3, 2)
    y = b.relu(b.conv(y, 64, 192, 5, 1, 2, bias=True))
    y, hw = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2]), _window_out("alexnet", image_size, hw, 3, 2)
    y = b.relu(b.conv(y, 192, 384, 3, bias=True))
    y = b.relu(b.conv(y, 384, 256, 3, bias=True))
    y = b.relu(b.conv(y, 256, 256, 3, bias=True))
    y, hw = b.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2]), _window_out("alexnet", image_size, hw, 3, 2)
    return b.model(_classifier(b, y, 256, hw, num_classes), [1, num_classes])


def vgg19(image_size: int = 224, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = OnnxBuilder("vgg19", seed)
    y = b.input("input", [1, 3, image_size, image_size])
    c, hw = 3, image_size
    for v in VGG19:
        if v == "M":
            y, hw = b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2]), _window_out("vgg19", image_size, hw, 2, 2)
        else:
            y, c = b.relu(b.conv(y, c, v, 3, bias=True)), v
    return b.model(_classifier(b, y, c, hw, num_classes), [1, num_classes])
