"""3-D convolution and pooling (rank-5 inputs) and ConvTranspose (1-D, 2-D, 3-D), composed from the 2-D anchors.

The canonical ops have one convolution anchor (conv2d) and two pooling anchors (max_pool2d, avg_pool2d), which
the schedules, layout passes and kernels are built around. Rather than add 3-D anchors, the forms here are
rewritten into those anchors plus injective ops (slice, pad, concat, reshape, transpose):

* Conv over (D, H, W): the kd depth taps are gathered by strided slices into the channel axis, so one conv2d over
  (H, W) with kd times the input channels per group computes all of them (the depth of the output is folded into
  the batch). It costs a copy of the input kd times the size; fine for the sizes ONNX models use 3-D for here.
* Pooling over (D, H, W): max and average over a box are separable (the box, the padding and the counted region
  are products of one interval per axis), so a 2-D pool over (H, W) is followed by a (kd, 1) pool over D.
* ConvTranspose: the input is dilated by the strides (stride - 1 zeros between elements), padded by
  dilation * (kernel - 1) - pad on each side (+ output_padding at the end), and convolved with the kernel flipped
  and its in/out channels swapped per group.
"""

from __future__ import annotations

import math

import numpy as np

from woodpecker.frontend import op_base as base
from woodpecker.ir.ops import conv_out


def _pads_nd(ctx, node, attrs, sizes, kernel, strides, dilations) -> tuple[list[int], list[int]]:
    """(begins, ends) of a Conv/pool over len(sizes) spatial axes, from `pads` or `auto_pad`."""
    n = len(sizes)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * 2 * n))
        if len(pads) != 2 * n:
            raise ctx.fail(node, f"pads {pads} do not describe {n}-D padding")
        return pads[:n], pads[n:]
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.fail(node, f"auto_pad={auto_pad!r} is not supported")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        begins.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        ends.append(total - begins[-1])
    return begins, ends


def _spatial_attrs(ctx, node, attrs, n: int, key: str, fill: int) -> list[int]:
    values = list(attrs.get(key, [fill] * n))
    if len(values) != n:
        raise ctx.fail(node, f"{key} {values} does not have one value per spatial axis ({n})")
    return [int(v) for v in values]


def _emit(ctx, node, op: str, inputs, attrs: dict, suffix: str) -> str:
    return ctx.b.emit1(op, inputs, attrs, name=f"{node.name or node.op_type}_{suffix}")


def _slice_axis(ctx, node, x: str, axis: int, start: int, stop: int, step: int) -> str:
    t = ctx.b.type_of(x)
    starts, ends, steps = [0] * t.rank, list(t.shape), [1] * t.rank
    starts[axis], ends[axis], steps[axis] = start, stop, step
    if starts == [0] * t.rank and ends == list(t.shape) and steps == [1] * t.rank:
        return x
    attrs = {"starts": tuple(starts), "ends": tuple(ends), "steps": tuple(steps)}
    return _emit(ctx, node, "slice", [x], attrs, "slice")


def _pad_value(ctx, node, x: str, begins: list[int], ends: list[int]) -> str:
    """Zero padding of every axis; negative entries crop instead."""
    t = ctx.b.type_of(x)
    for axis in range(t.rank):
        size = ctx.b.type_of(x).shape[axis]
        x = _slice_axis(ctx, node, x, axis, max(-begins[axis], 0), size - max(-ends[axis], 0), 1)
    grow = [max(p, 0) for p in begins] + [max(p, 0) for p in ends]
    if not any(grow):
        return x
    return _emit(ctx, node, "pad", [x], {"pads": tuple(grow), "mode": "constant", "value": 0.0}, "pad")


# ----------------------------------------------------------------------------------------------------------------
# convolution over 1, 2 or 3 spatial axes


def conv_nd(ctx, node, x: str, w: str, strides, dilations, begins, ends, groups: int) -> str:
    """ONNX Conv without bias on a rank-3, -4 or -5 input, through the conv2d anchor."""
    rank = ctx.b.type_of(x).rank
    if rank == 4:
        return _conv2d(ctx, node, x, w, strides, dilations, begins, ends, groups)
    if rank == 3:  # 1-D: H = 1
        n, c, width = ctx.b.type_of(x).shape
        k, cg, kw = ctx.b.type_of(w).shape
        y = _conv2d(ctx, node, base._reshape(ctx, x, (n, c, 1, width)), base._reshape(ctx, w, (k, cg, 1, kw)),
                    [1, *strides], [1, *dilations], [0, *begins], [0, *ends], groups)
        return base._reshape(ctx, y, tuple(ctx.b.type_of(y).shape[:2]) + (ctx.b.type_of(y).shape[3],))
    if rank == 5:
        return _conv3d(ctx, node, x, w, strides, dilations, begins, ends, groups)
    raise ctx.fail(node, f"only 1-D, 2-D and 3-D spatial inputs are supported, got rank {rank}")


def _conv2d(ctx, node, x, w, strides, dilations, begins, ends, groups) -> str:
    attrs = {"strides": tuple(strides), "dilations": tuple(dilations), "pads": (*begins, *ends), "groups": groups}
    return _emit(ctx, node, "conv2d", [x, w], attrs, "conv")


def _conv3d(ctx, node, x, w, strides, dilations, begins, ends, groups) -> str:
    n, c, depth, h, width = ctx.b.type_of(x).shape
    k, cg, kd, kh, kw = ctx.b.type_of(w).shape
    if c != cg * groups or k % groups:
        raise ctx.fail(node, f"input has {c} channels but the weight {[k, cg, kd, kh, kw]} with group={groups} "
                             f"expects {cg * groups}")
    out_depth = conv_out(depth, kd, strides[0], begins[0], ends[0], dilations[0])
    if out_depth <= 0:
        raise ctx.fail(node, f"the output depth would be {out_depth}")
    xp = _pad_value(ctx, node, x, [0, 0, begins[0], 0, 0], [0, 0, ends[0], 0, 0])
    # tap t of the depth kernel reads input depths t * dilation + od * stride, od < out_depth
    taps = []
    for t in range(kd):
        start = t * dilations[0]
        tap = _slice_axis(ctx, node, xp, 2, start, start + (out_depth - 1) * strides[0] + 1, strides[0])
        taps.append(base._reshape(ctx, tap, (n, 1, groups, cg, out_depth, h, width)))
    stacked = taps[0] if kd == 1 else _emit(ctx, node, "concat", taps, {"axis": 1}, "taps")
    # [N, kd, G, Cg, OD, H, W] -> [N * OD, G * kd * Cg, H, W]: per group, channel t * Cg + c
    planes = _emit(ctx, node, "transpose", [stacked], {"perm": (0, 4, 2, 1, 3, 5, 6)}, "planes")
    planes = base._reshape(ctx, planes, (n * out_depth, groups * kd * cg, h, width))
    # weight [K, Cg, kd, kh, kw] -> [K, kd * Cg, kh, kw], the same channel order
    w2 = _emit(ctx, node, "transpose", [w], {"perm": (0, 2, 1, 3, 4)}, "weight")
    w2 = base._reshape(ctx, w2, (k, kd * cg, kh, kw))
    y = _conv2d(ctx, node, planes, w2, strides[1:], dilations[1:], begins[1:], ends[1:], groups)
    _, _, oh, ow = ctx.b.type_of(y).shape
    y = base._reshape(ctx, y, (n, out_depth, k, oh, ow))
    return _emit(ctx, node, "transpose", [y], {"perm": (0, 2, 1, 3, 4)}, "out")


def _add_bias(ctx, node, y: str, bias_index: int) -> str:
    if not ctx.has_input(node, bias_index):
        return y
    bias = ctx.input(node, bias_index)
    t = ctx.b.type_of(y)
    return _emit(ctx, node, "add", [y, base._reshape(ctx, bias, (1, t.shape[1]) + (1,) * (t.rank - 2))], {}, "bias")


def conv3d(ctx, node, attrs) -> list[str]:
    """Conv on a rank-5 input (called by the Conv handler)."""
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    wt = ctx.b.type_of(w)
    if wt.rank != 5:
        raise ctx.fail(node, f"a 3-D convolution needs a rank-5 weight, got rank {wt.rank}")
    kernel = _spatial_attrs(ctx, node, attrs, 3, "kernel_shape", 0) if "kernel_shape" in attrs else list(wt.shape[2:])
    if kernel != list(wt.shape[2:]):
        raise ctx.fail(node, f"kernel_shape {kernel} differs from the weight's {list(wt.shape[2:])}")
    strides = _spatial_attrs(ctx, node, attrs, 3, "strides", 1)
    dilations = _spatial_attrs(ctx, node, attrs, 3, "dilations", 1)
    begins, ends = _pads_nd(ctx, node, attrs, ctx.b.type_of(x).shape[2:], kernel, strides, dilations)
    y = conv_nd(ctx, node, x, w, strides, dilations, begins, ends, int(attrs.get("group", 1)))
    return [_add_bias(ctx, node, y, 2)]


# ----------------------------------------------------------------------------------------------------------------
# pooling over (D, H, W)


def pool3d(ctx, node, attrs) -> list[str]:
    """MaxPool/AveragePool on a rank-5 input (called by the pooling handler): a 2-D pool over (H, W), then over D."""
    x = ctx.input(node, 0)
    n, c, depth, h, width = ctx.b.type_of(x).shape
    kernel = _spatial_attrs(ctx, node, attrs, 3, "kernel_shape", 1)
    strides = _spatial_attrs(ctx, node, attrs, 3, "strides", 1)
    dilations = _spatial_attrs(ctx, node, attrs, 3, "dilations", 1)
    begins, ends = _pads_nd(ctx, node, attrs, (depth, h, width), kernel, strides, dilations)
    common = {"ceil_mode": attrs.get("ceil_mode", 0), "count_include_pad": attrs.get("count_include_pad", 0)}
    plane_attrs = {**common, "kernel_shape": kernel[1:], "strides": strides[1:], "dilations": dilations[1:],
                   "pads": [begins[1], begins[2], ends[1], ends[2]]}
    y = _pool2d(ctx, node, base._reshape(ctx, x, (n, c * depth, h, width)), plane_attrs)
    _, _, oh, ow = ctx.b.type_of(y).shape
    depth_attrs = {**common, "kernel_shape": [kernel[0], 1], "strides": [strides[0], 1],
                   "dilations": [dilations[0], 1], "pads": [begins[0], 0, ends[0], 0]}
    y = _pool2d(ctx, node, base._reshape(ctx, y, (n, c, depth, oh * ow)), depth_attrs)
    return [base._reshape(ctx, y, (n, c, ctx.b.type_of(y).shape[2], oh, ow))]


def _pool2d(ctx, node, x: str, attrs: dict) -> str:
    pool_attrs, explicit = base._pool_common(ctx, node, attrs, x)
    if node.op_type == "MaxPool":
        return _emit(ctx, node, "max_pool2d", [x], pool_attrs, "pool")
    pool_attrs["count_pads"] = explicit if attrs["count_include_pad"] else (0, 0, 0, 0)
    return _emit(ctx, node, "avg_pool2d", [x], pool_attrs, "pool")


# ----------------------------------------------------------------------------------------------------------------
# ConvTranspose


def _transpose_pads(ctx, node, attrs, sizes, kernel, strides, dilations, output_padding) -> tuple[list, list]:
    """(begins, ends) that ConvTranspose crops from its full output, per the ONNX specification."""
    n = len(sizes)
    auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ctx.fail(node, f"auto_pad={auto_pad!r} is not supported")
    output_shape = attrs.get("output_shape")
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [size * s for size, s in zip(sizes, strides)]
    if output_shape is None:
        if auto_pad == "VALID":
            return [0] * n, [0] * n
        pads = list(attrs.get("pads", [0] * 2 * n))
        if len(pads) != 2 * n:
            raise ctx.fail(node, f"pads {pads} do not describe {n}-D padding")
        return pads[:n], pads[n:]
    output_shape = list(output_shape)[-n:]  # some exporters give N and C too
    if len(output_shape) != n:
        raise ctx.fail(node, f"output_shape {list(attrs['output_shape'])} does not give {n} spatial sizes")
    if any(attrs.get("pads", [])):
        # the specification derives pads from output_shape; with explicit pads as well, runtimes disagree
        raise ctx.fail(node, "both output_shape and non-zero pads are given")
    begins, ends = [], []
    for size, k, s, d, extra, out in zip(sizes, kernel, strides, dilations, output_padding, output_shape):
        total = s * (size - 1) + extra + (k - 1) * d + 1 - int(out)
        half = total // 2
        begins.append(half if auto_pad == "SAME_UPPER" else total - half)
        ends.append(total - begins[-1])
    return begins, ends


def _dilate(ctx, node, x: str, strides) -> str:
    """Insert stride - 1 zeros between neighbours along each spatial axis; the trailing zeros are kept."""
    t = ctx.b.type_of(x)
    if all(s == 1 for s in strides):
        return x
    n, c, *sizes = t.shape
    spread = base._reshape(ctx, x, (n, c, *[d for size in sizes for d in (size, 1)]))
    grow = [0] * (2 + 2 * len(sizes)) + [0, 0] + [d for s in strides for d in (0, s - 1)]
    spread = _emit(ctx, node, "pad", [spread], {"pads": tuple(grow), "mode": "constant", "value": 0.0}, "dilate")
    return base._reshape(ctx, spread, (n, c, *[size * s for size, s in zip(sizes, strides)]))


def _transpose_weight(ctx, node, w: str, groups: int) -> str:
    """[C, K/G, *k] -> [K, C/G, *k] per group, flipped along every spatial axis."""
    c, kg, *kernel = ctx.b.type_of(w).shape
    if c % groups:
        raise ctx.fail(node, f"the weight's {c} input channels do not split into group={groups}")
    cg = c // groups
    r = len(kernel)
    w = base._reshape(ctx, w, (groups, cg, kg, *kernel))
    w = _emit(ctx, node, "transpose", [w], {"perm": (0, 2, 1, *range(3, 3 + r))}, "weight")
    w = base._reshape(ctx, w, (groups * kg, cg, *kernel))
    for axis in range(2, 2 + r):
        w = _slice_axis(ctx, node, w, axis, kernel[axis - 2] - 1, -1, -1)
    return w


@base.handles("ConvTranspose")
def _conv_transpose(ctx, node, attrs):
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    xt, wt = ctx.b.type_of(x), ctx.b.type_of(w)
    r = xt.rank - 2
    if r not in (1, 2, 3) or wt.rank != xt.rank:
        raise ctx.fail(node, f"input rank {xt.rank} and weight rank {wt.rank}: 1-D, 2-D or 3-D expected")
    groups = int(attrs.get("group", 1))
    if xt.shape[1] != wt.shape[0]:
        raise ctx.fail(node, f"input has {xt.shape[1]} channels but the weight {list(wt.shape)} expects {wt.shape[0]}")
    kernel = list(wt.shape[2:])
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != kernel:
        raise ctx.fail(node, f"kernel_shape {list(attrs['kernel_shape'])} differs from the weight's {kernel}")
    strides = _spatial_attrs(ctx, node, attrs, r, "strides", 1)
    dilations = _spatial_attrs(ctx, node, attrs, r, "dilations", 1)
    output_padding = _spatial_attrs(ctx, node, attrs, r, "output_padding", 0)
    begins, ends = _transpose_pads(ctx, node, attrs, xt.shape[2:], kernel, strides, dilations, output_padding)
    # full output: (size - 1) * s + 1 dilated input positions, each side padded by d * (k - 1); then crop the
    # pads and append output_padding. The dilated input keeps s - 1 trailing zeros, which the end accounts for.
    reach = [d * (k - 1) for k, d in zip(kernel, dilations)]
    pad_begin = [0, 0] + [e - b for e, b in zip(reach, begins)]
    pad_end = [0, 0] + [e - p + extra - (s - 1) for e, p, extra, s in zip(reach, ends, output_padding, strides)]
    xp = _pad_value(ctx, node, _dilate(ctx, node, x, strides), pad_begin, pad_end)
    y = conv_nd(ctx, node, xp, _transpose_weight(ctx, node, w, groups), [1] * r, dilations, [0] * r, [0] * r, groups)
    return [_add_bias(ctx, node, y, 2)]


# ----------------------------------------------------------------------------------------------------------------
# MaxPool's Indices output


def max_pool_indices(ctx, node, x: str, y: str, pool_attrs: dict, storage_order: int) -> str:
    """Indices of MaxPool over a rank-4 input: for each output, the flat index into x of the first window position
    (in row-major window order, as onnxruntime scans it) whose value is the maximum y. storage_order=1 numbers the
    (H, W) plane column-major; the N and C parts of the index are row-major either way (ONNX, onnxruntime)."""
    n, c, h, w = ctx.b.type_of(x).shape
    _, _, oh, ow = ctx.b.type_of(y).shape
    (kh, kw), (sh, sw), (dh, dw) = pool_attrs["kernel"], pool_attrs["strides"], pool_attrs["dilations"]
    pt, pl, pb, pr = pool_attrs["pads"]
    xp = _pad_value(ctx, node, x, [0, 0, pt, pl], [0, 0, pb, pr])
    rows, cols = np.arange(oh)[:, None] * sh - pt, np.arange(ow)[None, :] * sw - pl
    found = ctx.b.constant(np.full((1, 1, oh, ow), -1, np.int64), "no_index")
    false = ctx.b.constant(np.array(False), "false")
    for i in reversed(range(kh)):  # the last assignment wins: scan taps from last to first
        for j in reversed(range(kw)):
            r, q = rows + i * dh, cols + j * dw
            inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
            if not inside.any():
                continue
            tap = _slice_axis(ctx, node, xp, 2, i * dh, i * dh + (oh - 1) * sh + 1, sh)
            tap = _slice_axis(ctx, node, tap, 3, j * dw, j * dw + (ow - 1) * sw + 1, sw)
            hit = _emit(ctx, node, "equal", [tap, y], {}, "is_max")
            if not inside.all():
                hit = _emit(ctx, node, "where", [ctx.b.constant(inside, "inside"), hit, false], {}, "is_max")
            plane = r * w + q if storage_order == 0 else r + q * h
            position = ctx.b.constant(np.where(inside, plane, 0).astype(np.int64)[None, None], "position")
            found = _emit(ctx, node, "where", [hit, position, found], {}, "index")
    offset = ctx.b.constant((np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1), "plane_offset")
    return _emit(ctx, node, "add", [found, offset], {}, "indices")
