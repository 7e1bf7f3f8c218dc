"""A small BERT encoder (Devlin et al. 2019) as PyTorch exports it: embedding lookups, LayerNormalization,
multi-head self-attention with an additive mask, erf-GELU feed-forward. Random weights."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from woodpecker.models.builder import OnnxBuilder


def _gelu(b: OnnxBuilder, x: str) -> str:
    half = b.const(np.array(0.5, np.float32), "half")
    one = b.const(np.array(1.0, np.float32), "one")
    sqrt2 = b.const(np.array(math.sqrt(2.0), np.float32), "sqrt2")
    erf = b.op("Erf", [b.op("Div", [x, sqrt2])])
    return b.op("Mul", [b.op("Mul", [x, b.op("Add", [erf, one])]), half])


def bert(seq_len: int = 128, hidden: int = 256, layers: int = 4, heads: int = 4, vocab: int = 8192,
         seed: int = 0) -> onnx.ModelProto:
    """Defaults: a BERT-mini-like encoder (4 layers, hidden 256, 4 heads, FFN 1024)."""
    b = OnnxBuilder("bert", seed)
    ids = b.input("input_ids", [1, seq_len], TensorProto.INT64)
    mask = b.input("attention_mask", [1, seq_len], TensorProto.INT64)
    head_dim = hidden // heads
    word = b.const(b.rng.normal(0, 0.02, (vocab, hidden)).astype(np.float32), "word_emb")
    pos = b.const(b.rng.normal(0, 0.02, (1, seq_len, hidden)).astype(np.float32), "pos_emb")
    x = b.op("Add", [b.op("Gather", [word, ids], axis=0), pos])
    x = b.layer_norm(x, hidden, 1e-12)
    # additive mask: (1 - mask) * -10000, broadcast over heads and query positions
    m = b.op("Cast", [b.op("Unsqueeze", [mask, b.const(np.array([1, 2], np.int64), "axes")])], to=TensorProto.FLOAT)
    m = b.op("Mul", [b.op("Sub", [b.const(np.array(1.0, np.float32), "one"), m]),
                     b.const(np.array(-10000.0, np.float32), "neg")])
    split_shape = b.const(np.array([1, seq_len, heads, head_dim], np.int64), "shape")
    merge_shape = b.const(np.array([1, seq_len, hidden], np.int64), "shape")
    scale = b.const(np.array(math.sqrt(head_dim), np.float32), "scale")
    for _ in range(layers):
        def heads_of(t: str, perm: list[int]) -> str:
            return b.op("Transpose", [b.op("Reshape", [t, split_shape])], perm=perm)

        q = heads_of(b.matmul_linear(x, hidden, hidden), [0, 2, 1, 3])
        k = heads_of(b.matmul_linear(x, hidden, hidden), [0, 2, 3, 1])
        v = heads_of(b.matmul_linear(x, hidden, hidden), [0, 2, 1, 3])
        scores = b.op("Add", [b.op("Div", [b.op("MatMul", [q, k]), scale]), m])
        probs = b.op("Softmax", [scores], axis=-1)
        ctx = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, merge_shape])
        x = b.layer_norm(b.op("Add", [b.matmul_linear(ctx, hidden, hidden), x]), hidden, 1e-12)
        ffn = b.matmul_linear(_gelu(b, b.matmul_linear(x, hidden, 4 * hidden)), 4 * hidden, hidden)
        x = b.layer_norm(b.op("Add", [ffn, x]), hidden, 1e-12)
    return b.model(x, [1, seq_len, hidden])
