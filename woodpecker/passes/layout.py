"""Layout pass: convolution chains run in the blocked layout NCHW[b]c, with conversions only at chain boundaries.

In NCHW[b]c the innermost b channels of a pixel are contiguous, so the convolution kernel's innermost loop is one
b-wide vector of output channels (b = 16 is two AVX2 registers). Converting layout around every convolution costs
a full read and write of the activation each time, so instead the blocked form propagates: elementwise ops (bias,
activation, residual add), pooling and channel concatenation consume and produce blocked values, and a value is
converted back to NCHW only where a consumer needs it (a reshape, a dense layer, a graph output).

Weights are repacked at compile time: conv [K, C, R, S] -> [K/ob, C/ib, R, S, ib, ob]; depthwise [C, 1, R, S] ->
[C/b, R, S, b]; per-channel constants [1, C, 1, 1] -> [1, C/b, 1, 1, b].
"""

from __future__ import annotations

import numpy as np

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph, Node
from woodpecker.passes.rewrite import Rewriter


def block_for(channels: int, max_block: int = 16) -> int | None:
    """Channel block size: 16 (two AVX2 vectors), 8 or 4 lanes when they divide the channel count; the whole
    channel dimension when it is small (the RGB input of the first convolution); otherwise None: odd channel
    counts (58, 1000) stay in NCHW, where the kernel vectorizes along the image width instead."""
    for b in (16, 8, 4):
        if b <= max_block and channels % b == 0:
            return b
    if channels <= 8:
        return channels
    return None


class _Layout:
    def __init__(self, graph: Graph, max_block: int) -> None:
        self.rw = Rewriter(graph)
        self.max_block = max_block
        self.blocked: dict[str, str] = {}  # old value -> its blocked twin in the new graph
        self.plain: dict[str, str] = {}  # old value -> its NCHW form in the new graph

    # -- conversions (memoized, so a value is converted at most once each way) ---------------------------------
    def get_plain(self, value: str) -> str:
        if value in self.plain:
            return self.plain[value]
        if value in self.blocked:
            out = self.rw.emit("layout_transform", [self.blocked[value]], {"block": self._block(value), "to_blocked": False})
            self.plain[value] = out
            return out
        return self.rw.map(value)

    def get_blocked(self, value: str, block: int) -> str | None:
        if value in self.blocked:
            return self.blocked[value] if self._block(value) == block else None
        t = self.rw.b.type_of(self.get_plain(value))
        if t.rank != 4 or t.shape[1] % block:
            return None
        out = self.rw.emit("layout_transform", [self.get_plain(value)], {"block": block, "to_blocked": True})
        self.blocked[value] = out
        return out

    def _block(self, value: str) -> int:
        return int(self.rw.b.type_of(self.blocked[value]).shape[-1])

    def set_blocked(self, old: str, new: str) -> None:
        self.blocked[old] = new

    # -- rewrites ----------------------------------------------------------------------------------------------
    def conv(self, node: Node) -> bool:
        x, w = node.inputs[0], node.inputs[1]
        xt = self.rw.b.type_of(self.get_plain(x)) if x not in self.blocked else None
        if not self.rw.b.is_constant(self.rw.map(w)):
            return False
        weight = self.rw.b.constants[self.rw.map(w)]
        k, cg, r, s = weight.shape
        c = cg * node.attrs.get("groups", 1)
        groups = node.attrs.get("groups", 1)
        if xt is not None and xt.rank != 4:
            return False
        if groups == 1:
            ib, ob = block_for(c, self.max_block), block_for(k, self.max_block)
            if ib is None or ob is None:
                return False
            xb = self.get_blocked(x, ib)
            if xb is None:
                return False
            packed = weight.reshape(k // ob, ob, c // ib, ib, r, s).transpose(0, 2, 4, 5, 3, 1)
            wb = self.rw.b.constant(np.ascontiguousarray(packed), node.inputs[1] + "_packed")
            out = self.rw.emit("conv2d_nchwc", [xb, wb], _conv_attrs(node), name=node.name)
        elif groups == c == k and cg == 1:
            b = block_for(c, self.max_block)
            if b is None:
                return False
            xb = self.get_blocked(x, b)
            if xb is None:
                return False
            packed = weight.reshape(c // b, b, r, s).transpose(0, 2, 3, 1)
            wb = self.rw.b.constant(np.ascontiguousarray(packed), node.inputs[1] + "_packed")
            out = self.rw.emit("depthwise_conv2d_nchwc", [xb, wb], _conv_attrs(node), name=node.name)
        else:
            return False  # other grouped convolutions stay in NCHW
        self.set_blocked(node.outputs[0], out)
        return True

    def elementwise(self, node: Node) -> bool:
        anchor = next((v for v in node.inputs if v in self.blocked), None)
        if anchor is None:
            return False
        out_t = self.rw.b.type_of(node.outputs[0]) if node.outputs[0] in self.rw.b.types else None
        block = self._block(anchor)
        shape4 = out_t.shape if out_t is not None else None
        if shape4 is None or len(shape4) != 4:
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
        self.set_blocked(node.outputs[0], out)
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
        self.set_blocked(node.outputs[0], out)
        return True

    def concat(self, node: Node) -> bool:
        if node.attrs["axis"] != 1 or not all(v in self.blocked for v in node.inputs):
            return False
        blocks = {self._block(v) for v in node.inputs}
        if len(blocks) != 1:
            return False
        out = self.rw.emit("concat", [self.blocked[v] for v in node.inputs], {"axis": 1}, name=node.name)
        self.set_blocked(node.outputs[0], out)
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
            if not done:
                rw.copy(node.with_(inputs=tuple(self.get_plain(v) for v in node.inputs)))
        outputs = [self.get_plain(v) for v in rw.graph.outputs]
        return rw.b.build(outputs, rw.graph.output_names)


def _conv_attrs(node: Node) -> dict:
    return {k: node.attrs[k] for k in ("strides", "pads", "dilations")}


def to_blocked_layout(graph: Graph, max_block: int = 16) -> Graph:
    return _Layout(graph, max_block).run()
