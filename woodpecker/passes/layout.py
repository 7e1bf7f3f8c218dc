"""Layout pass: convolution chains run in the blocked layout NCHW[b]c, with conversions only at chain boundaries.

In NCHW[b]c the innermost b channels of a pixel are contiguous, so the convolution kernel's innermost loop is one
b-wide vector of output channels (b = 16 is two AVX2 registers). Converting layout around every convolution costs
a full read and write of the activation each time, so instead the blocked form propagates: elementwise ops (bias,
activation, residual add), pooling and channel concatenation consume and produce blocked values, and a value is
converted back to NCHW only where a consumer needs it (a reshape, a dense layer, a graph output).

Weights are repacked at compile time: conv [K, C, R, S] -> [K/ob, C/ib, R, S, ib, ob]; depthwise [C, 1, R, S] ->
[C/b, R, S, b]; per-channel constants [1, C, 1, 1] -> [1, C/b, 1, 1, b]. A grouped convolution runs blocked where
its groups hold whole channel blocks, or do once merged (block_groups: 8-channel groups in pairs), as a
conv2d_nchwc with a `groups` attribute and weight [K/ob, C/groups/ib, R, S, ib, ob]; narrower groups stay in NCHW.

Padded blocks: with `pad_to` (the target's vector lanes), a channel count that no full-width block divides (58,
116, 232, 1000: ShuffleNet's branches, a 1000-class head) is rounded up to whole blocks of that width, the way
onnxruntime's NCHWc does, instead of running in 4- or 8-lane blocks (a quarter or half of an AVX-512 register; a
116-channel 1x1 convolution ran 1.8x slower than onnxruntime's padded one). The padding channels carry zero
weights, so whatever they hold never reaches a real channel, provided it is finite (0 * inf is NaN): a padded
value therefore passes only through ops that keep finite numbers finite (not div, log, sqrt, ...); other ops, a
concat (its inputs' channels would land at padded offsets) and every NCHW consumer see it cropped back.

Winograd (`use_winograd`, the host CPU): a 3x3 stride-1 convolution of at least 16 channels each way
(winograd_fits) becomes conv2d_winograd_nchwc, its weight transformed here once into U = G g G^T
[36, K/ob, C/ib, ib, ob] (woodpecker.ir.winograd); its kernel does 36 products per 4x4 output tile instead of 144.
"""

from __future__ import annotations

import math

import numpy as np

from woodpecker.ir import ops, winograd
from woodpecker.ir.graph import Graph, Node
from woodpecker.passes.rewrite import Rewriter


# ops whose result can be non-finite for finite inputs: a padded value's padding lanes must not pass through them
PAD_UNSAFE = frozenset({"div", "pow", "log", "sqrt", "reciprocal", "exp", "sinh", "cosh", "tan", "asin", "acos",
                        "acosh", "atanh"})


def block_for(channels: int, max_block: int = 16, pad_to: int = 0) -> int | None:
    """Channel block size: 16, 8 or 4 lanes when they divide the channel count (at least `pad_to` wide when
    padding is on); the whole channel dimension when it is small (the RGB input of the first convolution); else
    `pad_to` lanes with the last block padded, or None without padding: those channel counts stay in NCHW."""
    for b in (16, 8, 4):
        if b <= max_block and channels % b == 0 and b >= min(pad_to, max_block):
            return b
    if channels <= 8:
        return channels
    if pad_to:
        return min(pad_to, max_block)
    return None


# A grouped convolution whose groups are narrower than a channel block (ResNeXt-50 32x4d: 4 and 8 channels a
# group in its first two stages) runs blocked with groups merged until each spans whole blocks; the merged
# weight holds zeros between the original groups, so it computes up to this many times the convolution's FLOPs.
# Why accept any: in NCHW such a convolution needs a layout conversion on each side (ResNeXt-50: 32 conversions,
# 3.0 of 48 ms). Measured per call on ResNeXt-50 (one process, AVX-512, with the conversions counted to NCHW):
# 2x the work (8-channel groups at 28x28) 430-530 us blocked against about 420 us in NCHW, 930 us for the strided
# one; 4x (4-channel groups at 56x56) 720-800 us against 610, so not 4.
GROUPED_WASTE_MAX = 2


def block_groups(groups: int, in_blocks: int, out_blocks: int) -> int | None:
    """The number of merged groups for a grouped convolution in the blocked layout: the largest count dividing the
    groups and both channel-block counts (so that each merged group holds whole input and output blocks), or None
    where merging multiplies the work by more than GROUPED_WASTE_MAX."""
    merged = math.gcd(groups, in_blocks, out_blocks)
    return merged if groups // merged <= GROUPED_WASTE_MAX else None


def merge_groups(weight: np.ndarray, groups: int, merged: int) -> np.ndarray:
    """A grouped convolution's weight [K, C/groups, R, S] as the weight of `merged` groups [K, C/merged, R, S]:
    each output channel keeps its own group's inputs at their offsets within the merged group, zeros elsewhere."""
    k, cg, r, s = weight.shape
    per = groups // merged  # original groups in one merged group
    if per == 1:
        return weight
    out = np.zeros((k, cg * per, r, s), weight.dtype)
    kg = k // groups
    for o in range(k):
        local = (o // kg) % per  # the output channel's group, counted within its merged group
        out[o, local * cg:(local + 1) * cg] = weight[o]
    return out


class _Layout:
    def __init__(self, graph: Graph, max_block: int, pad_to: int, use_winograd: bool = False) -> None:
        self.rw = Rewriter(graph)
        self.max_block = max_block
        self.pad_to = pad_to
        self.use_winograd = use_winograd
        self.blocked: dict[str, str] = {}  # old value -> its blocked twin in the new graph (may hold more channels)
        self.plain: dict[str, str] = {}  # old value -> its NCHW form in the new graph
        self.producer = {v: n for n in graph.nodes for v in n.outputs}  # old value -> its node in the old graph
        self.shuffled: dict[str, tuple[list[str], tuple[int, ...], int]] = {}  # a shuffle's value -> its sources
        self.reblocked: dict[tuple[str, int], str] = {}  # (old value, block) -> its twin in other blocks

    # -- conversions (memoized, so a value is converted at most once each way) ---------------------------------
    def get_plain(self, value: str) -> str:
        if value in self.plain:
            return self.plain[value]
        if value in self.blocked:
            attrs = {"block": self._block(value), "to_blocked": False}
            if self.padded(value):
                attrs["channels"] = self._channels(value)
            out = self.rw.emit("layout_transform", [self.blocked[value]], attrs)
            self.plain[value] = out
            return out
        return self.rw.map(value)

    def get_blocked(self, value: str, block: int) -> str | None:
        if value in self.blocked:
            return self.blocked[value] if self._block(value) == block else self._reblocked(value, block)
        t = self.rw.b.type_of(self.get_plain(value))
        if t.rank != 4:
            return None
        attrs = {"block": block, "to_blocked": True}
        if t.shape[1] % block:
            if block != block_for(t.shape[1], self.max_block, self.pad_to):
                return None
            attrs["channels"] = t.shape[1]
        out = self.rw.emit("layout_transform", [self.get_plain(value)], attrs)
        self.blocked[value] = out
        return out

    def _reblocked(self, value: str, block: int) -> str | None:
        """A blocked value in other blocks (a channel_shuffle_nchwc of one group: one gather), instead of a
        conversion to NCHW and back. Why: ShuffleNet v1's grouped 1x1 convolution reads 20-channel groups in
        4-lane blocks, and its input came from a depthwise convolution in padded 16-lane blocks: it ran in NCHW,
        between two conversions, with its residual add and ReLU in a third kernel."""
        c = self._channels(value)
        if c % block and block != block_for(c, self.max_block, self.pad_to):
            return None
        key = (value, block)
        if key not in self.reblocked:
            self.reblocked[key] = self._emit_shuffle(value, 0, c, block)
        return self.reblocked[key]

    def _block(self, value: str) -> int:
        return int(self.rw.b.type_of(self.blocked[value]).shape[-1])

    def _channels(self, value: str) -> int:
        """A value's channel count: its NCHW type in the graph being rewritten."""
        return int(self.rw.graph.types[value].shape[1])

    def padded(self, value: str) -> bool:
        return self._channels(value) % self._block(value) != 0

    # -- rewrites ----------------------------------------------------------------------------------------------
    def conv(self, node: Node) -> bool:
        x, w = node.inputs[0], node.inputs[1]
        xt = self.rw.b.type_of(self.get_plain(x)) if x not in self.blocked else None
        if not self.rw.b.is_constant(self.rw.map(w)):
            return False
        weight = self.rw.b.constants[self.rw.map(w)]
        k, cg, r, s = weight.shape
        groups = node.attrs.get("groups", 1)
        c = cg * groups
        if xt is not None and xt.rank != 4:
            return False
        if groups == 1:
            ib, ob = block_for(c, self.max_block, self.pad_to), block_for(k, self.max_block, self.pad_to)
            if ib is None or ob is None:
                return False
            xb = self.get_blocked(x, ib)
            if xb is None:
                return False
            cp, kp = ops.padded_channels(c, ib), ops.padded_channels(k, ob)
            # zero weights from and to the padding channels
            wp = np.pad(weight, ((0, kp - k), (0, cp - c), (0, 0), (0, 0)))
            blocked = ops.block_conv_weight(wp, ib, ob)
            if self.use_winograd and winograd_fits(node, weight.shape, self.rw.graph.types[node.outputs[0]].shape):
                u = self.rw.b.constant(winograd.transform_weight(blocked), node.inputs[1] + "_winograd")
                out = self.rw.emit("conv2d_winograd_nchwc", [xb, u], _conv_attrs(node), name=node.name)
            else:
                wb = self.rw.b.constant(blocked, node.inputs[1] + "_packed")
                out = self.rw.emit("conv2d_nchwc", [xb, wb], _conv_attrs(node), name=node.name)
        elif groups == c == k and cg == 1:
            b = block_for(c, self.max_block, self.pad_to)
            if b is None:
                return False
            xb = self.get_blocked(x, b)
            if xb is None:
                return False
            cp = ops.padded_channels(c, b)
            wp = np.pad(weight, ((0, cp - c), (0, 0), (0, 0), (0, 0)))
            packed = wp.reshape(cp // b, b, r, s).transpose(0, 2, 3, 1)
            wb = self.rw.b.constant(np.ascontiguousarray(packed), node.inputs[1] + "_packed")
            out = self.rw.emit("depthwise_conv2d_nchwc", [xb, wb], _conv_attrs(node), name=node.name)
        else:
            out = self._grouped_conv(node, x, weight, groups)
            if out is None:
                return False  # stays in NCHW
        self.blocked[node.outputs[0]] = out
        return True

    def _grouped_conv(self, node: Node, x: str, weight: np.ndarray, groups: int) -> str | None:
        """A grouped convolution in the blocked layout, its groups merged until each spans whole channel blocks
        (block_groups); None where no merge within GROUPED_WASTE_MAX fits."""
        k, cg = weight.shape[:2]
        c = cg * groups
        # whole blocks without padding: a padded block would straddle two groups
        ib, ob = block_for(c, self.max_block, 0), block_for(k, self.max_block, 0)
        if ib is None or ob is None or c % ib or k % ob:
            return None
        merged = block_groups(groups, c // ib, k // ob)
        if merged is None:
            return None
        xb = self.get_blocked(x, ib)
        if xb is None:
            return None
        wm = merge_groups(weight, groups, merged)  # [k, c / merged, r, s], zeros between original groups
        wb = self.rw.b.constant(ops.block_conv_weight(wm, ib, ob), node.inputs[1] + "_packed")
        return self.rw.emit("conv2d_nchwc", [xb, wb], {**_conv_attrs(node), "groups": merged}, name=node.name)

    def elementwise(self, node: Node) -> bool:
        anchor = next((v for v in node.inputs if v in self.blocked), None)
        if anchor is None:
            return False
        out_t = self.rw.b.type_of(node.outputs[0]) if node.outputs[0] in self.rw.b.types else None
        block = self._block(anchor)
        shape4 = out_t.shape if out_t is not None else None
        if shape4 is None or len(shape4) != 4:
            return False
        if node.op in PAD_UNSAFE and any(v in self.blocked and self.padded(v) for v in node.inputs):
            return False
        inputs = []
        for v in node.inputs:
            mv = self.rw.map(v)
            if v in self.blocked:
                if self._block(v) != block:
                    return False
                inputs.append(self.blocked[v])
            elif self.rw.b.is_constant(mv):
                inputs.append(self._blocked_constant(mv, shape4, block))
            else:
                t = self.rw.b.type_of(mv)
                if t.shape != tuple(shape4):
                    return False
                b = self.get_blocked(v, block)
                if b is None:
                    return False
                inputs.append(b)
        out = self.rw.emit(node.op, inputs, dict(node.attrs), name=node.name)
        self.blocked[node.outputs[0]] = out
        return True

    def _blocked_constant(self, value: str, shape4: tuple[int, ...], block: int) -> str:
        const = self.rw.b.constants[value]
        if const.size == 1:
            return value
        c4 = const.reshape((1,) * (4 - const.ndim) + const.shape)
        if c4.shape[1] == 1:
            blocked = c4[:, :, :, :, None]  # broadcasts over every channel block and lane
        else:
            blocked = ops.block_channels(np.broadcast_to(c4, (c4.shape[0], shape4[1], c4.shape[2], c4.shape[3])), block)
        return self.rw.b.constant(np.ascontiguousarray(blocked), value + "_blocked")

    def pool(self, node: Node) -> bool:
        x = node.inputs[0]
        if x not in self.blocked:
            return False
        out = self.rw.emit(node.op, [self.blocked[x]], dict(node.attrs), name=node.name)
        self.blocked[node.outputs[0]] = out
        return True

    def concat(self, node: Node) -> bool:
        if node.attrs["axis"] != 1 or not all(v in self.blocked for v in node.inputs):
            return False
        blocks = {self._block(v) for v in node.inputs}
        if len(blocks) != 1 or any(self.padded(v) for v in node.inputs):
            return self._gathered_concat(node)
        out = self.rw.emit("concat", [self.blocked[v] for v in node.inputs], {"axis": 1}, name=node.name)
        self.blocked[node.outputs[0]] = out
        return True

    def _gathered_concat(self, node: Node) -> bool:
        """A channel concatenation of blocked values whose blocks are padded or differ (ShuffleNet v1's downsampling
        unit: a 24-channel pool beside 216 convolved channels, each padded to whole 16-lane blocks): one gather of
        the real channels (channel_shuffle_nchwc of one group) into the concatenation's own blocks, instead of a
        concat in NCHW between conversions."""
        channels = tuple(self._channels(v) for v in node.inputs)
        block = block_for(sum(channels), self.max_block, self.pad_to)
        if block is None:
            return False
        value = node.outputs[0]
        self.shuffled[value] = ([self.blocked[v] for v in node.inputs], channels, 1)
        self.blocked[value] = self._emit_shuffle(value, 0, sum(channels), block, node.name)
        return True

    def channel_shuffle(self, node: Node) -> bool:
        """A channel shuffle, reshape([N, g, C/g, H, W]) -> transpose(0, 2, 1, 3, 4) -> reshape([N, C, H, W]) of
        a blocked value or of a channel concatenation of blocked values, as one blocked op (channel_shuffle_nchwc)
        that reads the sources where they lie; the slices taken of it (ShuffleNetV2's split) become shuffles of
        their own channel range (slice below). The NCHW chain the other rewrites leave behind is dead code then.

        Why: in NCHW each shuffle cost its sources' conversion out of the blocked layout and its halves' conversion
        back, composed through the reshapes into per-element divisions (ShuffleNetV2: a third of the run in
        shuffles and conversions, ShuffleNet v1 with 3 groups 44 %)."""
        tr = self.producer.get(node.inputs[0])
        first = self.producer.get(tr.inputs[0]) if tr is not None else None
        if tr is None or tr.op != "transpose" or tuple(tr.attrs["perm"]) != (0, 2, 1, 3, 4) \
                or first is None or first.op != "reshape":
            return False
        x = first.inputs[0]
        xt, split, out = (tuple(self.rw.graph.types[v].shape) for v in (x, first.outputs[0], node.outputs[0]))
        if len(xt) != 4 or out != xt or len(split) != 5 or split[0] != xt[0] or split[1] * split[2] != xt[1] \
                or split[3:] != xt[2:]:
            return False
        c = xt[1]
        cat = self.producer.get(x)
        sources = list(cat.inputs) if cat is not None and cat.op == "concat" and cat.attrs["axis"] == 1 else [x]
        if not all(v in self.blocked for v in sources):
            return False
        block = block_for(c, self.max_block, self.pad_to)
        if block is None:
            return False
        channels = tuple(self._channels(v) for v in sources)
        self.shuffled[node.outputs[0]] = ([self.blocked[v] for v in sources], channels, int(split[1]))
        self.blocked[node.outputs[0]] = self._emit_shuffle(node.outputs[0], 0, c, block, node.name)
        return True

    def _emit_shuffle(self, value: str, start: int, stop: int, block: int, name: str | None = None) -> str:
        """Channels start:stop of a blocked value, in blocks of `block`: a gather from the sources it was shuffled
        or concatenated from (self.shuffled), or from its own blocked form (one group) when it is neither."""
        if value not in self.shuffled:
            self.shuffled[value] = ([self.blocked[value]], (self._channels(value),), 1)
        sources, channels, groups = self.shuffled[value]
        attrs = {"channels": channels, "groups": groups, "start": start, "stop": stop, "block": block}
        return self.rw.emit("channel_shuffle_nchwc", sources, attrs, name=name)

    def slice(self, node: Node) -> bool:
        """A channel range of a blocked value, or of a blocked channel shuffle: a channel_shuffle_nchwc of that
        range alone (of one group where the value is not a shuffle: a plain channel slice), so that ShuffleNetV2's
        split stays blocked whether it splits a shuffle or a convolution's output."""
        x = node.inputs[0]
        if x not in self.blocked:  # a shuffle's value is blocked too
            return False
        shape = self.rw.graph.types[x].shape
        starts, ends, steps = node.attrs["starts"], node.attrs["ends"], node.attrs["steps"]
        if len(starts) != 4 or any(s != 1 for s in steps) or any(
                (starts[d], min(ends[d], shape[d])) != (0, shape[d]) for d in (0, 2, 3)):
            return False
        start, stop = starts[1], min(ends[1], shape[1])
        block = block_for(stop - start, self.max_block, self.pad_to) if 0 <= start < stop else None
        if block is None:
            return False
        self.blocked[node.outputs[0]] = self._emit_shuffle(x, start, stop, block, node.name)
        return True

    def run(self) -> Graph:
        rw = self.rw
        for node in rw.graph.nodes:
            op = node.op
            done = False
            if op == "conv2d":
                done = self.conv(node)
            elif op in ops.ELEMENTWISE_OPS and op != "cast":
                done = self.elementwise(node)
            elif op in ("max_pool2d", "avg_pool2d", "global_avg_pool", "global_max_pool"):
                done = self.pool(node)
            elif op == "concat":
                done = self.concat(node)
            elif op == "reshape":
                done = self.channel_shuffle(node)
            elif op == "slice":
                done = self.slice(node)
            if not done:
                rw.copy(node.with_(inputs=tuple(self.get_plain(v) for v in node.inputs)))
        outputs = [self.get_plain(v) for v in rw.graph.outputs]
        return rw.b.build(outputs, rw.graph.output_names)


# Smallest channel counts and output side for Winograd. Why: its transforms read and write 36 values per 16 outputs
# and input channel, which a short reduction cannot repay (a network's 3-channel first layer). Measured per layer on
# AVX-512 (2 threads, one process per layer, default knobs, time against conv2d_nchwc's defaults in the same
# process): VGG's 64 @224 2.20x, 128 @112 2.65x, 256 @56 3.35x, 512 @28 2.87x, 512 @14 2.09x; ResNet's 64 @56
# 1.68x, 128 @28 1.82x, 256 @14 2.51x; 16 -> 64 @56 1.42x, 32 @56 1.42x, 48 -> 64 @28 1.19-1.54x, DenseNet's
# 128 -> 32 @56 2.77x, AlexNet's 192 -> 384 @13 1.82x; the tiny layers at parity either way (128 -> 32 @14, 72-75 us:
# 0.89-1.11x; 64 @8, 23-29 us: 0.87-1.00x). A 7x7 output stays direct: its 2x2 tiles compute 8x8 outputs, and the
# weight, read 4x larger, is most of the layer's traffic; alone such layers gain 1.09-1.30x (512 @7), but in the
# model their 38 MB weights come from memory on every run (9.4 MB direct): ResNet-18 0.969x (0.942-0.988),
# ResNet-50 0.993x (benchmarks/ab_in_process.py --rule winograd-7x7).
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_OUTPUT = 8


def winograd_fits(node: Node, weight_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether a convolution runs as Winograd F(4x4, 3x3): a 3x3 window, stride and dilation 1, one group, at
    least WINOGRAD_MIN_CHANNELS channels in and out and an output of at least WINOGRAD_MIN_OUTPUT on each side."""
    k, cg, r, s = weight_shape
    return ((r, s) == (3, 3) and tuple(node.attrs["strides"]) == (1, 1)
            and tuple(node.attrs.get("dilations", (1, 1))) == (1, 1) and node.attrs.get("groups", 1) == 1
            and min(k, cg) >= WINOGRAD_MIN_CHANNELS and min(out_shape[2:]) >= WINOGRAD_MIN_OUTPUT)


def _conv_attrs(node: Node) -> dict:
    return {k: node.attrs[k] for k in ("strides", "pads", "dilations")}


def to_blocked_layout(graph: Graph, max_block: int = 16, pad_to: int = 0, use_winograd: bool = False) -> Graph:
    """pad_to: lanes of the target's vector registers, to pad channel counts no full-width block divides (0: those
    stay in smaller blocks or in NCHW); use_winograd: 3x3 stride-1 convolutions that winograd_fits become
    conv2d_winograd_nchwc, their weight transformed here."""
    return _Layout(graph, max_block, pad_to, use_winograd).run()
