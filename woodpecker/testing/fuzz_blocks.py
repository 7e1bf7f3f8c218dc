"""Multi-node block generators for the differential fuzzer (woodpecker.testing.fuzz.generate has
fuzz_graphs draw them among its single-op generators): the op patterns that the zoo and exported models are made of.

    attention: Q/K/V projections (three MatMuls, or one fused MatMul split in three), heads split by Reshape and
               Transpose, MatMul Q K^T, a scale, an optional mask (additive constant or Where), Softmax, MatMul V,
               heads merged, an optional output projection with a residual and a layer norm (the fused op, or the
               ReduceMean/Sub/Pow/Sqrt/Div chain of exporters before opset 17)
    squeeze-excite: global average (GlobalAveragePool or ReduceMean) -> 1x1 Conv or Gemm -> Relu -> 1x1 Conv or
               Gemm -> Sigmoid or HardSigmoid -> Mul with the input
    concat-heavy: DenseNet-like (each layer's output concatenated onto its input) and Inception-like (parallel
               branches of 1x1, 3x3, 5x5 or 1x3/3x1 convolutions and a pooling branch, concatenated)
    shape arithmetic: Shape -> Gather/Slice -> Mul/Div/Add on int64 -> Concat -> Reshape or Expand, which the
               compiler must fold to constants once the input shapes are fixed

Each returns its last value, or None when the graph offers no operand it fits. Convolution and pooling blocks
are float32 only (onnxruntime has no double kernels for them).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from woodpecker.testing.fuzz_graphs import MAX_ELEMENTS, FuzzCase, _bcast, _Builder, _finish, _Value

__all__ = ["BLOCKS", "NAMED", "generate_block"]


def _linear(b: _Builder, x: _Value, d_out: int, bias: bool) -> _Value:
    """x @ W (+ bias) over the last axis."""
    d_in = x.shape[-1]
    y = b.node("MatMul", [x.name, b.weight((d_in, d_out), d_in)], (*x.shape[:-1], d_out))
    if bias:
        y = b.node("Add", [y.name, b.const(b.rng.normal(0, 0.1, d_out).astype(np.float32), "bias")], y.shape)
    return y


def _split_last(b: _Builder, x: _Value, parts: int) -> list[_Value]:
    """A Split of the last axis into `parts` equal pieces (the fused QKV projection)."""
    size = x.shape[-1] // parts
    outs = [_Value(b.uid("split_"), (*x.shape[:-1], size)) for _ in range(parts)]
    b.nodes.append(helper.make_node("Split", [x.name, b.const(np.array([size] * parts, np.int64))],
                                    [o.name for o in outs], name=b.uid("Split"), axis=x.rank - 1))
    b.values.extend(outs)
    return outs


def _heads_first(b: _Builder, t: _Value, heads: int, key: bool, split: bool) -> _Value:
    """[B, S, D] -> [B, h, S, D/h] ([B, h, D/h, S] for keys, transposed for Q K^T); without a head split, [B, S, D]
    (or [B, D, S] for keys)."""
    batch, seq, dim = t.shape
    if not split:
        return b.node("Transpose", [t.name], (batch, dim, seq), perm=[0, 2, 1]) if key else t
    r = b.rng
    target = [batch, seq, heads, dim // heads]
    named = [0 if r.random() < 0.5 else batch, -1 if r.random() < 0.3 else seq, heads, dim // heads]
    t4 = b.node("Reshape", [t.name, b.const(np.array(named, np.int64))], target)
    if not key:
        return b.node("Transpose", [t4.name], (batch, heads, seq, dim // heads), perm=[0, 2, 1, 3])
    if r.random() < 0.5:
        return b.node("Transpose", [t4.name], (batch, heads, dim // heads, seq), perm=[0, 2, 3, 1])
    k = b.node("Transpose", [t4.name], (batch, heads, seq, dim // heads), perm=[0, 2, 1, 3])
    return b.node("Transpose", [k.name], (batch, heads, dim // heads, seq), perm=[0, 1, 3, 2])


def _mask(b: _Builder, scores: _Value) -> _Value:
    """An attention mask on the scores: causal or padding-like, additive or through Where; never a whole row
    masked (the first key stays visible), so every Softmax row has a finite maximum."""
    r = b.rng
    seq = scores.shape[-1]
    if r.random() < 0.5:
        keep = np.tril(np.ones((seq, seq), bool))  # causal
        shape: tuple[int, ...] = (seq, seq) if r.random() < 0.5 else (1,) * (scores.rank - 2) + (seq, seq)
    else:
        keep = r.random((scores.shape[0],) + (1,) * (scores.rank - 2) + (seq,)) < 0.7  # padding of keys, per batch
        keep[..., 0] = True
        shape = keep.shape
    keep = keep.reshape(shape)
    if r.random() < 0.5:  # additive: 0 where kept, a large negative number elsewhere
        big = float(r.choice([-1e4, -1e9, float(np.finfo(np.float32).min)]))
        add = np.where(keep, 0.0, big).astype(np.float32)
        return b.node("Add", [scores.name, b.const(add, "mask")], _bcast(scores.shape, shape))
    fill = b.const(np.float32(r.choice([-np.inf, -1e4])), "fill")
    return b.node("Where", [b.const(keep, "keep"), scores.name, fill], _bcast(scores.shape, shape))


def _layer_norm(b: _Builder, x: _Value) -> _Value:
    """Normalize over the last axis: the fused op, or the chain that exporters emitted before opset 17."""
    r = b.rng
    d = x.shape[-1]
    gamma, beta = r.uniform(0.5, 1.5, d).astype(np.float32), r.normal(0, 0.1, d).astype(np.float32)
    eps = float(r.choice([1e-5, 1e-12]))
    if r.random() < 0.5:
        return b.node("LayerNormalization", [x.name, b.const(gamma), b.const(beta)], x.shape, axis=-1, epsilon=eps)
    kept = x.shape[:-1] + (1,)
    mean = b.node("ReduceMean", [x.name], kept, axes=[-1], keepdims=1)
    centred = b.node("Sub", [x.name, mean.name], x.shape)
    if r.random() < 0.5:
        square = b.node("Pow", [centred.name, b.const(np.float32(2.0))], x.shape)
    else:
        square = b.node("Mul", [centred.name, centred.name], x.shape)
    var = b.node("ReduceMean", [square.name], kept, axes=[-1], keepdims=1)
    std = b.node("Sqrt", [b.node("Add", [var.name, b.const(np.float32(eps))], kept).name], kept)
    normed = b.node("Div", [centred.name, std.name], x.shape)
    scaled = b.node("Mul", [normed.name, b.const(gamma)], x.shape)
    return b.node("Add", [scaled.name, b.const(beta)], x.shape)


def _attention(b: _Builder) -> _Value | None:
    x = b.pick(b.values, lambda v: v.rank == 3 or (v.rank == 4 and v.shape[2] * v.shape[3] <= 32))
    if x is None:
        return None
    r = b.rng
    if x.rank == 4:  # a vision transformer's view of an image: [N, C, H, W] -> [N, H*W, C]
        n, c, h, w = x.shape
        flat = b.node("Reshape", [x.name, b.const(np.array([0, c, -1], np.int64))], (n, c, h * w), exact=x.exact)
        x = b.node("Transpose", [flat.name], (n, h * w, c), exact=x.exact, perm=[0, 2, 1])
    batch, seq, d_in = x.shape
    heads, d_head = int(r.choice([1, 2, 3, 4])), int(r.choice([1, 2, 4, 8]))
    d_model = heads * d_head
    if batch * heads * seq * seq > MAX_ELEMENTS or batch * seq * 3 * d_model > MAX_ELEMENTS:
        return None
    bias = r.random() < 0.6
    if r.random() < 0.3:
        q, k, v = _split_last(b, _linear(b, x, 3 * d_model, bias), 3)
    else:
        q, k, v = (_linear(b, x, d_model, bias) for _ in range(3))
    split = heads > 1 or r.random() < 0.5
    scale = np.float32(1.0 / math.sqrt(d_head))
    if r.random() < 0.3:  # scale Q before the product (as some exporters do)
        q = b.node("Mul", [q.name, b.const(scale)], q.shape)
    qh, kt, vh = _heads_first(b, q, heads, False, split), _heads_first(b, k, heads, True, split), \
        _heads_first(b, v, heads, False, split)
    scores = b.node("MatMul", [qh.name, kt.name], (*qh.shape[:-1], kt.shape[-1]))
    if r.random() < 0.5:
        scores = b.node("Mul", [scores.name, b.const(scale)], scores.shape)
    else:
        scores = b.node("Div", [scores.name, b.const(np.float32(math.sqrt(d_head)))], scores.shape)
    if r.random() < 0.5:
        scores = _mask(b, scores)
    probs = b.node("Softmax", [scores.name], scores.shape, axis=int(r.choice([-1, scores.rank - 1])))
    ctx = b.node("MatMul", [probs.name, vh.name], (*probs.shape[:-1], vh.shape[-1]))
    if split:  # [B, h, S, dh] -> [B, S, h, dh] -> [B, S, h*dh]
        t = b.node("Transpose", [ctx.name], (batch, seq, heads, d_head), perm=[0, 2, 1, 3])
        named = [0, 0, -1] if r.random() < 0.5 else [batch, seq, d_model]
        ctx = b.node("Reshape", [t.name, b.const(np.array(named, np.int64))], (batch, seq, d_model))
    if r.random() < 0.6:  # output projection back to the input width, the residual, and a layer norm
        out = _linear(b, ctx, d_in, bias)
        res = b.node("Add", [x.name, out.name], x.shape)
        return _layer_norm(b, res) if r.random() < 0.7 else res
    return ctx


def _squeeze_excite(b: _Builder) -> _Value | None:
    if b.ftype != "float32":
        return None
    x = b.pick(b.values, lambda v: v.rank == 4)
    if x is None:
        return None
    r = b.rng
    n, c, _, _ = x.shape
    hidden = max(1, c // int(r.choice([1, 2, 4, 8])))
    if r.random() < 0.5:
        pooled = b.node("GlobalAveragePool", [x.name], (n, c, 1, 1))
    else:
        pooled = b.node("ReduceMean", [x.name], (n, c, 1, 1), axes=[2, 3], keepdims=1)
    if r.random() < 0.6:  # 1x1 convolutions on [N, C, 1, 1]
        h1 = b.node("Conv", [pooled.name, b.weight((hidden, c, 1, 1), c), b.const(r.normal(0, 0.1, hidden).astype(
            np.float32), "bias")], (n, hidden, 1, 1), kernel_shape=[1, 1])
        act = b.node("Relu", [h1.name], h1.shape)
        gate_in = b.node("Conv", [act.name, b.weight((c, hidden, 1, 1), hidden), b.const(r.normal(0, 0.1, c).astype(
            np.float32), "bias")], (n, c, 1, 1), kernel_shape=[1, 1])
    else:  # Flatten -> Gemm -> Relu -> Gemm -> back to [N, C, 1, 1]
        flat = b.node("Flatten", [pooled.name], (n, c), axis=1)
        h1 = b.node("Gemm", [flat.name, b.weight((hidden, c), c), b.const(r.normal(0, 0.1, hidden).astype(np.float32))],
                    (n, hidden), transB=1)
        act = b.node("Relu", [h1.name], h1.shape)
        h2 = b.node("Gemm", [act.name, b.weight((c, hidden), hidden), b.const(r.normal(0, 0.1, c).astype(np.float32))],
                    (n, c), transB=1)
        if r.random() < 0.5:
            gate_in = b.node("Reshape", [h2.name, b.const(np.array([n, c, 1, 1], np.int64))], (n, c, 1, 1))
        else:
            gate_in = b.node("Unsqueeze", [h2.name, b.const(np.array([2, 3], np.int64))], (n, c, 1, 1))
    if r.random() < 0.5:
        gate = b.node("Sigmoid", [gate_in.name], gate_in.shape)
    else:  # MobileNetV3's hard sigmoid
        gate = b.node("HardSigmoid", [gate_in.name], gate_in.shape, alpha=float(r.choice([1 / 6, 0.2])), beta=0.5)
    operands = [x.name, gate.name] if r.random() < 0.5 else [gate.name, x.name]
    return b.node("Mul", operands, x.shape)


def _conv_relu(b: _Builder, x: _Value, k_out: int, kernel: tuple[int, int]) -> _Value:
    """A stride-1 'same' convolution (kernel 1, 3, 5 or 1x3/3x1), often followed by Relu."""
    r = b.rng
    n, c, h, w = x.shape
    pads = [kernel[0] // 2, kernel[1] // 2] * 2
    inputs = [x.name, b.weight((k_out, c, *kernel), c * kernel[0] * kernel[1])]
    if r.random() < 0.7:
        inputs.append(b.const(r.normal(0, 0.1, k_out).astype(np.float32), "bias"))
    y = b.node("Conv", inputs, (n, k_out, h, w), kernel_shape=list(kernel), pads=pads)
    return b.node("Relu", [y.name], y.shape) if r.random() < 0.7 else y


def _dense_block(b: _Builder) -> _Value | None:
    if b.ftype != "float32":
        return None
    x = b.pick(b.values, lambda v: v.rank == 4 and v.shape[1] <= 16)
    if x is None:
        return None
    r = b.rng
    growth, cur = int(r.choice([1, 2, 4, 8])), x
    for _ in range(int(r.integers(2, 5))):
        n, c, h, w = cur.shape
        if n * (c + growth) * h * w > MAX_ELEMENTS:
            break
        t = cur
        if r.random() < 0.5:  # DenseNet's pre-activation: BN -> Relu before the convolution
            scale, shift = r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c)
            mean, var = r.normal(0, 0.1, c), r.uniform(0.5, 1.5, c)
            params = [b.const(p.astype(np.float32)) for p in (scale, shift, mean, var)]
            t = b.node("Relu", [b.node("BatchNormalization", [t.name, *params], t.shape, epsilon=1e-5).name], t.shape)
        y = _conv_relu(b, t, growth, (3, 3) if r.random() < 0.7 else (1, 1))
        cur = b.node("Concat", [cur.name, y.name], (n, c + growth, h, w), axis=int(r.choice([1, -3])))
    return cur if cur is not x else None


def _inception(b: _Builder) -> _Value | None:
    if b.ftype != "float32":
        return None
    x = b.pick(b.values, lambda v: v.rank == 4 and v.shape[1] <= 16 and min(v.shape[2:]) >= 2)
    if x is None:
        return None
    r = b.rng
    n, c, h, w = x.shape
    branches: list[_Value] = []
    for kind in r.permutation(4)[: int(r.integers(2, 5))]:
        width = int(r.choice([1, 2, 4, 8]))
        if kind == 0:
            branches.append(_conv_relu(b, x, width, (1, 1)))
        elif kind == 1:
            branches.append(_conv_relu(b, _conv_relu(b, x, width, (1, 1)), width, (3, 3)))
        elif kind == 2:  # a 5x5, or Inception-v3's factorized 1x3 then 3x1
            t = _conv_relu(b, x, width, (1, 1))
            if r.random() < 0.5:
                branches.append(_conv_relu(b, t, width, (5, 5)))
            else:
                branches.append(_conv_relu(b, _conv_relu(b, t, width, (1, 3)), width, (3, 1)))
        else:  # pooling with stride 1 and 'same' padding, then a 1x1 projection
            if r.random() < 0.5:
                p = b.node("MaxPool", [x.name], x.shape, exact=x.exact, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
            else:
                p = b.node("AveragePool", [x.name], x.shape, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                           count_include_pad=int(r.random() < 0.5))
            branches.append(_conv_relu(b, p, width, (1, 1)))
    channels = sum(v.shape[1] for v in branches)
    if n * channels * h * w > MAX_ELEMENTS:
        return None  # the branches stay in the graph, dead or used by later nodes
    return b.node("Concat", [v.name for v in branches], (n, channels, h, w), axis=1)


def _dim(b: _Builder, shape: _Value, i: int, rank: int) -> _Value:
    """Dimension i of a Shape value as a [1] int64 tensor: Gather of a [1] index, Gather of a scalar then Unsqueeze,
    or Slice."""
    r = b.rng
    choice = r.random()
    index = i - rank if r.random() < 0.3 else i
    if choice < 0.4:
        return b.node("Gather", [shape.name, b.const(np.array([index], np.int64))], (1,), dtype="int64", exact=True)
    if choice < 0.7:
        s = b.node("Gather", [shape.name, b.const(np.array(index, np.int64))], (), dtype="int64", exact=True)
        return b.node("Unsqueeze", [s.name, b.const(np.array([0], np.int64))], (1,), dtype="int64", exact=True)
    end = index + 1 if index != -1 else int(r.choice([rank, 2**62]))  # -1 + 1 would be 0: an empty slice
    return b.node("Slice", [shape.name, b.const(np.array([index], np.int64)), b.const(np.array([end], np.int64))],
                  (1,), dtype="int64", exact=True)


def _shape_arithmetic(b: _Builder) -> _Value | None:
    """A Reshape whose target is computed from the input's Shape on int64 (merged dims multiplied, split dims
    divided, an occasional -1 or a literal), or an Expand to another value's Shape."""
    x = b.pick(b.values, lambda v: v.rank >= 1)
    if x is None:
        return None
    r = b.rng
    if r.random() < 0.2:  # Expand a broadcastable value to x's run-time shape
        y = b.pick(b.values, lambda v: v is not x and _bcast(v.shape, x.shape) == x.shape)
        if y is None:
            return None
        shape = b.node("Shape", [x.name], (x.rank,), dtype="int64", exact=True)
        return b.node("Expand", [y.name, shape.name], x.shape, exact=y.exact)
    shape = b.node("Shape", [x.name], (x.rank,), dtype="int64", exact=True)
    pieces: list[_Value] = []
    target: list[int] = []
    i, used_minus_one = 0, False
    while i < x.rank:
        d, choice = x.shape[i], r.random()
        if choice < 0.3 and i + 1 < x.rank and len(target) < 5:  # merge i and i+1: Mul of the two dimensions
            a, c = _dim(b, shape, i, x.rank), _dim(b, shape, i + 1, x.rank)
            pieces.append(b.node("Mul", [a.name, c.name], (1,), dtype="int64", exact=True))
            target.append(d * x.shape[i + 1])
            i += 2
            continue
        factors = [f for f in range(2, d) if d % f == 0]
        if choice < 0.55 and factors and x.rank < 5:  # split by f: Div(d, f) and f
            f = int(r.choice(factors))
            a = _dim(b, shape, i, x.rank)
            part = b.node("Div", [a.name, b.const(np.array([f], np.int64))], (1,), dtype="int64", exact=True)
            pieces += [part, _Value(b.const(np.array([f], np.int64)), (1,), "int64", True)]
            target += [d // f, f]
        elif choice < 0.65 and not used_minus_one:
            pieces.append(_Value(b.const(np.array([-1], np.int64)), (1,), "int64", True))
            target.append(d)
            used_minus_one = True
        elif choice < 0.75:  # Add then Sub: arithmetic whose result is the dimension itself
            a = _dim(b, shape, i, x.rank)
            k = b.const(np.array([int(r.integers(1, 4))], np.int64))
            up = b.node("Add", [a.name, k], (1,), dtype="int64", exact=True)
            pieces.append(b.node("Sub", [up.name, k], (1,), dtype="int64", exact=True))
            target.append(d)
        else:
            pieces.append(_dim(b, shape, i, x.rank))
            target.append(d)
        i += 1
    if len(target) > 6:
        return None
    new_shape = b.node("Concat", [p.name for p in pieces], (len(target),), dtype="int64", exact=True, axis=0)
    return b.node("Reshape", [x.name, new_shape.name], tuple(target), exact=x.exact)


# generator -> weight among fuzz_graphs' single-op generators (whose weights sum to about 23)
BLOCKS = ((_attention, 0.8), (_squeeze_excite, 0.5), (_dense_block, 0.4), (_inception, 0.4),
          (_shape_arithmetic, 0.7))

NAMED = {"attention": _attention, "squeeze_excite": _squeeze_excite, "dense": _dense_block, "inception": _inception,
         "shape_arithmetic": _shape_arithmetic}


def generate_block(seed: int, name: str) -> FuzzCase:
    """A graph made of one or two stacked blocks of family `name` on an input that suits it (float32; a sequence
    [B, S, D] for attention, a small image otherwise), for CI to cover each family with a few fixed seeds."""
    r = np.random.default_rng(seed)
    b = _Builder(r, "float32")
    if name == "attention":
        shape = (int(r.choice([1, 2])), int(r.choice([1, 2, 3, 5, 8, 11])), int(r.choice([1, 3, 4, 8, 16])))
    else:
        shape = (int(r.choice([1, 2])), int(r.choice([1, 3, 4, 8])), int(r.integers(2, 9)), int(r.integers(2, 9)))
    x = _Value("x", shape, "float32", True)
    b.inputs.append(x)
    b.values.append(x)
    block, applied, wanted = NAMED[name], 0, int(r.integers(1, 3))
    for _ in range(20):  # a block can refuse an operand (too large once expanded): draw again
        applied += block(b) is not None
        if applied == wanted:
            break
    if not applied:
        raise ValueError(f"block {name} did not apply to an input of shape {shape} (seed {seed})")
    return _finish(b, seed)
