"""ViT-B/16 (Dosovitskiy et al. 2021) as torchvision exports it: a 16x16 stride-16 patch convolution turned into
tokens, a class token, learned position embeddings, pre-norm encoder layers (multi-head self-attention, GELU MLP),
a final LayerNorm and a linear head on the class token. Random weights.

The model is opset 20, for the Gelu operator (what torch.onnx emits for nn.GELU from opset 20 on)."""

from __future__ import annotations

import math

import numpy as np
import onnx

from woodpecker.models.builder import OnnxBuilder

GELU_OPSET = 20


def _attention(b: OnnxBuilder, x: str, tokens: int, hidden: int, heads: int) -> str:
    head_dim = hidden // heads
    qkv = b.matmul_linear(x, hidden, 3 * hidden)  # one in-projection, as nn.MultiheadAttention holds it
    split = b.const(np.array([hidden] * 3, np.int64), "split")
    q, k, v = b.op("Split", [qkv, split], n_out=3, axis=-1)
    to_heads = b.const(np.array([1, tokens, heads, head_dim], np.int64), "shape")
    q = b.op("Transpose", [b.op("Reshape", [q, to_heads])], perm=[0, 2, 1, 3])
    k = b.op("Transpose", [b.op("Reshape", [k, to_heads])], perm=[0, 2, 3, 1])
    v = b.op("Transpose", [b.op("Reshape", [v, to_heads])], perm=[0, 2, 1, 3])
    scale = b.const(np.array(1.0 / math.sqrt(head_dim), np.float32), "scale")
    probs = b.op("Softmax", [b.op("Mul", [b.op("MatMul", [q, k]), scale])], axis=-1)
    ctx = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    ctx = b.op("Reshape", [ctx, b.const(np.array([1, tokens, hidden], np.int64), "shape")])
    return b.matmul_linear(ctx, hidden, hidden)


def vit_b16(image_size: int = 224, num_classes: int = 1000, seed: int = 0, layers: int = 12, hidden: int = 768,
            heads: int = 12, patch: int = 16) -> onnx.ModelProto:
    """Defaults: ViT-B/16 (12 layers, hidden 768, 12 heads, MLP 3072, 197 tokens at 224x224)."""
    from woodpecker.errors import ModelLoadError

    if image_size % patch or hidden % heads:
        raise ModelLoadError(f"vit_b16: image_size {image_size} must be a multiple of patch {patch}, "
                             f"and hidden {hidden} of heads {heads}")
    b = OnnxBuilder("vit_b16", seed, opset=GELU_OPSET)
    x = b.input("input", [1, 3, image_size, image_size])
    grid = image_size // patch
    tokens = grid * grid + 1
    y = b.conv(x, 3, hidden, patch, patch, 0, bias=True)  # [1, hidden, grid, grid]
    y = b.op("Reshape", [y, b.const(np.array([1, hidden, grid * grid], np.int64), "shape")])
    y = b.op("Transpose", [y], perm=[0, 2, 1])  # [1, patches, hidden]
    cls = b.const(b.rng.normal(0, 0.02, (1, 1, hidden)).astype(np.float32), "cls_token")
    y = b.op("Concat", [cls, y], axis=1)
    y = b.op("Add", [y, b.const(b.rng.normal(0, 0.02, (1, tokens, hidden)).astype(np.float32), "pos_emb")])
    for _ in range(layers):
        y = b.op("Add", [y, _attention(b, b.layer_norm(y, hidden, 1e-6), tokens, hidden, heads)])
        mlp = b.op("Gelu", [b.matmul_linear(b.layer_norm(y, hidden, 1e-6), hidden, 4 * hidden)])
        y = b.op("Add", [y, b.matmul_linear(mlp, 4 * hidden, hidden)])
    y = b.layer_norm(y, hidden, 1e-6)
    y = b.op("Gather", [y, b.const(np.array(0, np.int64), "cls_index")], axis=1)  # x[:, 0]: [1, hidden]
    y = b.linear(y, hidden, num_classes)
    return b.model(y, [1, num_classes])
