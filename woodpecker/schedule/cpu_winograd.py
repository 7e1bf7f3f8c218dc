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

or (knob `fuse_rows`, the default where U is small beside the layer's transformed tensors: fuse_rows()) the three
stages in one nest parallel over blocks of a row of tiles, each block's V and M made and consumed in the cache
(_fused); there `tile_ko` and `parallel` do not apply (the block's lanes are the vector, the blocks the parallel loop).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from woodpecker import config
from woodpecker.ir.winograd import POSITIONS, TILE, tiles
from woodpecker.schedule.structure import KernelStructure

Knobs = Mapping[str, int | str]


def apply(sch, st: KernelStructure, knobs: Knobs, tiled_reduction) -> None:
    """`tiled_reduction`: woodpecker.schedule.cpu's, passed in so that this module does not import its caller."""
    chunks = int(knobs.get("fuse_rows", 0))
    if chunks:
        _fused(sch, st, knobs, chunks)
        return
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
    _unroll_tile_half(sch, t)
    sch.unroll(pos)
    sch.vectorize(ci)


def _output_transform(sch, st: KernelStructure) -> None:
    n, kb, yo, yi, xo, xi, ko = _output_tiles(sch, st)
    sch.reorder(n, kb, yo, xo, yi, xi, ko)
    sch.parallel(sch.fuse(n, kb, yo))
    _output_tile_inner(sch, st, xo, yi, xi, ko)


def _output_tiles(sch, st: KernelStructure):
    """The output statement's loops split into 4x4 tiles: (n, kb, yo, yi, xo, xi, ko); the statements between Z
    and it (the fused epilogue's) inlined."""
    *between, out = st.consumers[1:]  # st.consumers[0] is Z; the template's Y (renamed when an epilogue follows)
    for name in between:
        sch.compute_inline(sch.get_sblock(name))
    n, kb, y, x, ko = sch.get_loops(sch.get_sblock(out))
    yo, yi = sch.split(y, factors=[None, TILE])
    xo, xi = sch.split(x, factors=[None, TILE])
    return n, kb, yo, yi, xo, xi, ko


def _output_tile_inner(sch, st: KernelStructure, tile_loop, yi, xi, ko, **compute_at) -> None:
    """Z (the column transform) computed per output tile at `tile_loop`, the tile's 4 x 4 outputs unrolled."""
    z = sch.get_sblock(st.consumers[0])
    sch.compute_at(z, tile_loop, **compute_at)
    _unroll_tile_half(sch, z)
    sch.unroll(yi)
    sch.unroll(xi)
    sch.vectorize(ko)


def _unroll_tile_half(sch, block) -> None:
    """A half transform (T or Z: [.., rows, 6, lanes]) with its rows and its 6 columns unrolled, lanes as the vector:
    each `wino_bt` / `wino_at` select then folds to one row of its matrix."""
    *_, rows, cols, lanes = sch.get_loops(block)
    sch.unroll(rows)
    sch.unroll(cols)
    sch.vectorize(lanes)


# Fuse the stages per row of tiles where each row's reading of U costs at most this many times the row's own V and
# M: C*K/(C+K) per tile of the row (blocks x |U| / (|V| + |M|)). Measured on AVX-512, 2 threads
# (benchmarks/knob_probe.py, fused / three nests, the layer's fused default against 6 x 2 unfused): ratios 0.6-3.7
# (64@224, 64->128@112, 128@112, 64@56, 128->32@56 and @28) 1.20-1.77x faster; 6.4-9.1 (128->32@14, 96->128@28,
# 256@56, 128@28) 1.45x, 1.2x, 1.11x, 0.95-1.33x; 18.7 (112->224@14, U 3.6 MB) 1.4x; 32-64 (256@14, 512@28,
# 512@14: U of 9.4-37.7 MB read again by every row) 0.92x, 0.66x and 0.58x.
FUSE_MAX_U_READS = 24.0
FUSED_MAX_TILE_P = 8  # tiles per register tile in a fused block (a divisor of the row: no guarded remainder)
FUSED_BLOCKS_PER_THREAD = 2  # rows of tiles per thread, at least: a 7x7 output's 2 rows would idle a core


def fuse_rows(st: KernelStructure) -> bool:
    """Whether the untuned kernel runs the three stages per row of tiles (see FUSE_MAX_U_READS)."""
    names = {a.name: a.extent for a in st.output}
    if "x" not in names or "y" not in names:
        return False
    # the channels: every reduction axis (cb, ci; an axis of extent 1 may be absent) and the output block axes
    c = math.prod(a.extent for a in st.reduction)
    k = math.prod(a.extent for a in st.spatial if a.name in ("kb", "ko"))
    rows = names.get("n", 1) * tiles(names["y"])
    if rows < FUSED_BLOCKS_PER_THREAD * max(1, config.get().num_threads):
        return False
    return c * k / (c + k) <= FUSE_MAX_U_READS * tiles(names["x"])


def default_knobs(st: KernelStructure, vector_lanes: int, registers: int) -> dict[str, int | str]:
    """The products' register tile: `tile_p` tiles x `tile_kb` output blocks of OB lanes. On 32 vector registers
    6 x 2 blocks of 16 (12 accumulators, each loaded V value feeding two FMAs, as the dense panels' 6 x 2); on 16,
    4 tiles x 1 block (8 accumulators of AVX2's 8 lanes, the direct convolution's rule). Where a block takes several
    vectors (16 channels on 4 lanes) the tile shrinks until its accumulators fit the file with 2 registers to spare
    (the search space's constraint). Parallel over the 36 positions and the output block pairs: 36 x K/32 chunks,
    each reading its own slice of U once. `registers`: the vector register count (0: unknown, taken as 16).

    Where the stages are fused per row of tiles (fuse_rows), one output block of the largest divisor of the row up
    to 8 tiles (measured with knob_probe, fused: 7 x 1 at 1.00-1.36x of 7 x 2 on rows of 14-56 tiles), or 8 and a
    peeled remainder where no divisor reaches half of that (a row of 13 tiles)."""
    all_tiles, kb = st.extent("p"), st.extent("kb")
    vectors = -(-st.extent("ko") // max(1, vector_lanes))  # accumulator vectors per tile and output block
    budget = max(registers, 16) - 2
    base = {"tile_e": 1, "tile_ko": st.extent("ko"), "split_cb": 1, "reduction_order": "default", "unroll": 1,
            "parallel": 2}
    if fuse_rows(st):
        row = tiles(next(a.extent for a in st.output if a.name == "x"))  # fuse_rows found the axis
        limit = max(1, min(FUSED_MAX_TILE_P, budget // vectors, row))
        divisor = max(d for d in range(1, row + 1) if row % d == 0 and d <= limit)
        # a row without a divisor near the limit (13 tiles: 1) takes the full tile and a peeled remainder instead
        tile_p = divisor if 2 * divisor >= limit else limit
        return {**base, "tile_kb": 1, "tile_p": tile_p, "fuse_rows": 1}
    wide_file = registers >= 32
    tile_kb = 2 if wide_file and kb % 2 == 0 and 2 * vectors <= budget else 1
    tile_p = max(1, min(all_tiles, 6 if wide_file else 4, budget // (tile_kb * vectors)))
    return {**base, "tile_kb": tile_kb, "tile_p": tile_p, "fuse_rows": 0}


def _fused(sch, st: KernelStructure, knobs: Knobs, chunks: int) -> None:
    """The three stages per block of tiles (knob `fuse_rows`: each row of 4x4 output tiles in that many blocks),
    parallel over the blocks: the block's transformed input and products are made and consumed while they are in
    the core's L2, instead of going through memory between three whole-layer nests.

    Why: on a layer of large images and few channels the transformed input V and the products M are 2.25x the
    input and output each (VGG's 64-channel 224x224 layer: 29 MB each, written and read once more per stage),
    while its transformed weight U is small (590 KB) and is read again by every block from the cache. Where U is
    large and the image small (512 channels at 14x14: 37.7 MB of U) every block would stream U again: there the
    three whole-layer nests, parallel over the positions, read it once (default_knobs picks)."""
    sch.compute_inline(sch.get_sblock("Xp"))
    n, kb, yo, yi, xo, xi, ko = _output_tiles(sch, st)
    tiles_per_row = int(sch.get(xo).extent)
    per_block = -(-tiles_per_row // max(1, min(chunks, tiles_per_row)))
    xoo, xoi = sch.split(xo, factors=[None, per_block])
    sch.reorder(n, yo, xoo, kb, xoi, yi, xi, ko)
    block = sch.fuse(n, yo, xoo)
    sch.parallel(block)
    _output_tile_inner(sch, st, xoi, yi, xi, ko, preserve_unit_loops=True)

    m = sch.get_sblock(st.anchor)
    sch.compute_at(m, block, preserve_unit_loops=True)
    v = sch.get_sblock("V")
    sch.compute_at(v, block, preserve_unit_loops=True)
    _, pos, cb, p, ci = sch.get_loops(v)
    sch.reorder(cb, p, pos, ci)
    t = sch.get_sblock("T")
    sch.compute_at(t, p, preserve_unit_loops=True)
    _unroll_tile_half(sch, t)
    sch.unroll(pos)
    sch.vectorize(ci)
    _block_products(sch, m, knobs)


def _block_products(sch, m, knobs: Knobs) -> None:
    """One block's 36 products, M[e, kb, p] = sum V[e, cb, p] U[e, kb, cb], in register tiles of `tile_p` tiles x
    `tile_kb` output blocks x the block's lanes: per position, per output block tile, per tile group, the whole
    reduction over the input channels, so that U[e]'s slice of the tile (C x tile_kb x OB) stays in L1."""
    # the reduction's loops (cb, ci) after the block's spatial ones; a reduction axis of extent 1 (one input block)
    # has no loop of its own after compute_at
    _, e, kb, p, ko, *reduction = sch.get_loops(m)
    tile_p, tile_kb = int(knobs.get("tile_p", 1)), int(knobs.get("tile_kb", 1))
    extent_p = int(sch.get(p).extent)
    po, pi = sch.split(p, factors=[None, min(tile_p, extent_p)])
    if extent_p % tile_p and tile_p < extent_p:
        # the last, partial register tile peeled off, so that the full ones run unguarded (as
        # woodpecker.schedule.cpu._partition_remainders, which says what a guard costs)
        sch.annotate(po, "pragma_loop_partition_hint", 1)
    kbo, kbi = sch.split(kb, factors=[None, min(tile_kb, int(sch.get(kb).extent))])
    split_cb = int(knobs.get("split_cb", 1))
    if len(reduction) == 2 and 1 < split_cb < int(sch.get(reduction[0]).extent):
        reduction = [*sch.split(reduction[0], factors=[None, split_cb]), reduction[1]]
    sch.reorder(e, kbo, po, *reduction, pi, kbi, ko)
    if int(knobs.get("unroll", 1)):
        sch.unroll(pi)
        sch.unroll(kbi)
    sch.vectorize(ko)
    init = sch.decompose_reduction(m, reduction[0])
    sch.vectorize(sch.get_loops(init)[-1])
