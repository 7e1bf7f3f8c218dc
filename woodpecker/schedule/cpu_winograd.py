"""CPU schedule of the Winograd convolution (kernels/winograd.wpl, family conv2d_winograd), in three loop nests:

input transform  V = B^T d B per 6x6 input tile: parallel over [image, channel block, tile] (the tiles in the
                 parallel loop too, for a 16-channel input's single block; channel blocks outside them, so that
                 each of V's 36 planes is written in order: tiles first was 1.3-1.6x slower on VGG's layers),
                 the tile's row transform T computed in a 36 x IB scratch, the 36 positions unrolled (so that
                 each `wino_bt` select folds to its own row of B^T) and the channel block as the vector loop;
products         M[e] = V[e] U[e], 36 matrix products per image: the anchor, tiled by `tiled_reduction` as a 1x1
                 convolution whose rows are the tiles (register tile of `tile_p` tiles x `tile_kb` output blocks);
output transform Y = A^T m A per 4x4 output tile, with the fused epilogue: parallel over [image, output block,
                 tile row], the column transform Z per tile, the 4 x 4 outputs unrolled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from woodpecker.ir.winograd import POSITIONS, TILE
from woodpecker.schedule.structure import KernelStructure

Knobs = Mapping[str, int | str]


def apply(sch, st: KernelStructure, knobs: Knobs, tiled_reduction) -> None:
    """`tiled_reduction`: woodpecker.schedule.cpu's, passed in so that this module does not import its caller."""
    _input_transform(sch)
    products = dataclasses.replace(st, producers=(), consumers=(), reducing_producers=())
    tiled_reduction(sch, products, knobs, "conv2d_winograd")
    _output_transform(sch, st)


def _input_transform(sch) -> None:
    sch.compute_inline(sch.get_sblock("Xp"))
    v = sch.get_sblock("V")
    e, cb, p, ci = sch.get_loops(v)
    image, pos = sch.split(e, factors=[None, POSITIONS])
    sch.reorder(image, cb, p, pos, ci)
    tile = sch.fuse(image, cb, p)
    sch.parallel(tile)
    t = sch.get_sblock("T")
    sch.compute_at(t, tile)
    *_, a, s, tci = sch.get_loops(t)
    sch.unroll(a)
    sch.unroll(s)
    sch.vectorize(tci)
    sch.unroll(pos)
    sch.vectorize(ci)


def _output_transform(sch, st: KernelStructure) -> None:
    *between, out = st.consumers[1:]  # st.consumers[0] is Z; the template's Y (renamed when an epilogue follows)
    for name in between:
        sch.compute_inline(sch.get_sblock(name))
    yb = sch.get_sblock(out)
    n, kb, y, x, ko = sch.get_loops(yb)
    yo, yi = sch.split(y, factors=[None, TILE])
    xo, xi = sch.split(x, factors=[None, TILE])
    sch.reorder(n, kb, yo, xo, yi, xi, ko)
    sch.parallel(sch.fuse(n, kb, yo))
    z = sch.get_sblock(st.consumers[0])
    sch.compute_at(z, xo)
    *_, i, s, zko = sch.get_loops(z)
    sch.unroll(i)
    sch.unroll(s)
    sch.vectorize(zko)
    sch.unroll(yi)
    sch.unroll(xi)
    sch.vectorize(ko)


def default_knobs(st: KernelStructure, vector_lanes: int, registers: int) -> dict[str, int | str]:
    """The products' register tile: `tile_p` tiles x `tile_kb` output blocks of OB lanes. On 32 vector registers
    6 x 2 blocks of 16 (12 accumulators, each loaded V value feeding two FMAs, as the dense panels' 6 x 2); on 16,
    4 tiles x 1 block (8 accumulators of AVX2's 8 lanes, the direct convolution's rule). Where a block takes several
    vectors (16 channels on 4 lanes) the tile shrinks until its accumulators fit the file with 2 registers to spare
    (the search space's constraint). Parallel over the 36 positions and the output block pairs: 36 x K/32 chunks,
    each reading its own slice of U once. `registers`: the vector register count (0: unknown, taken as 16)."""
    tiles, kb = st.extent("p"), st.extent("kb")
    vectors = -(-st.extent("ko") // max(1, vector_lanes))  # accumulator vectors per tile and output block
    budget = max(registers, 16) - 2
    wide_file = registers >= 32
    tile_kb = 2 if wide_file and kb % 2 == 0 and 2 * vectors <= budget else 1
    tile_p = max(1, min(tiles, 6 if wide_file else 4, budget // (tile_kb * vectors)))
    return {"tile_e": 1, "tile_kb": tile_kb, "tile_p": tile_p, "tile_ko": st.extent("ko"),
            "split_cb": 1, "reduction_order": "default", "unroll": 1, "parallel": 2}
