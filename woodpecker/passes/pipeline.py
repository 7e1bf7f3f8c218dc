"""The graph optimizer's pass order, with switches for the target (the blocked layout is a CPU choice)."""

from __future__ import annotations

import dataclasses

from woodpecker.ir.graph import Graph
from woodpecker.passes.concat_in_place import concat_in_place
from woodpecker.passes.dce import eliminate_dead_code
from woodpecker.passes.fold_batchnorm import fold_batchnorm
from woodpecker.passes.fold_constants import fold_constants
from woodpecker.passes.fuse import fuse_elementwise, fuse_epilogues
from woodpecker.passes.inline_injective import inline_injective
from woodpecker.passes.layout import to_blocked_layout
from woodpecker.passes.pack_dense import pack_dense
from woodpecker.passes.simplify import simplify_graph
from woodpecker.passes.sink_views import sink_views


@dataclasses.dataclass(frozen=True)
class PassOptions:
    blocked_layout: bool = True  # NCHW[b]c convolution chains
    max_block: int = 16  # largest channel block; 16 = two AVX2 vectors of float32
    pad_channels: int = 0  # vector lanes to pad odd channel counts to in the blocked layout (0: no padding)
    pack_dense: bool = True  # dense weights as [N/b, K, b] panels
    fuse: bool = True  # epilogue and elementwise fusion, data-movement inlining
    concat_in_place: bool = False  # producers write into their concat's output (one flat arena: the host CPU)
    winograd: bool = False  # 3x3 stride-1 convolutions by Winograd F(4x4, 3x3) (woodpecker.passes.layout)


def optimize(graph: Graph, options: PassOptions = PassOptions()) -> Graph:
    g = fold_constants(graph)
    g = simplify_graph(g)
    g = fold_batchnorm(g)
    if options.blocked_layout:
        g = to_blocked_layout(g, options.max_block, options.pad_channels, options.winograd)
    if options.pack_dense:
        g = pack_dense(g)
    g = eliminate_dead_code(simplify_graph(g))
    if options.fuse:
        g = eliminate_dead_code(simplify_graph(sink_views(g)))
        g = fuse_epilogues(g)
        g = fuse_elementwise(g)
        g = inline_injective(g)
    g = eliminate_dead_code(g)
    if options.concat_in_place:
        g = concat_in_place(g)
    g.validate()
    return g
