"""CPU schedule templates. Each takes the task's structure and a dict of knob values and transforms the TIR.

tiled_reduction  (convolutions, dense, matmul, pooling): multi-level tiling of the anchor loop nest,
    outer spatial loops (fused, parallel) -> reduction loops -> register tile (unrolled) -> vector lane loop;
    the padding block is computed per parallel chunk, the fused epilogue per register tile.
row_reduce       (softmax, layer norm, LRN, reductions): parallel over rows, every statement of a row computed
    inside the row loop, non-reduction inner loops vectorized.
injective        (elementwise chains, transposes, concatenation, layout conversion): one flat loop split into
    parallel chunks of vector lanes, or (knob `nest`) the innermost axis as the vector loop under one parallel loop.

Knob names are those of the search spaces in search_spaces/cpu/*.toml; woodpecker.schedule.cpu_defaults gives
the values an untuned compile uses.
"""

from __future__ import annotations

from collections.abc import Mapping

from woodpecker.schedule import cpu_winograd
from woodpecker.schedule.cpu_defaults import (
    PADDED_FAMILIES, host_register_tile, image_rows, largest_divisor, total)
from woodpecker.schedule.errors import not_applicable
from woodpecker.schedule.structure import KernelStructure

Knobs = Mapping[str, int | str]


def apply(sch, family: str, st: KernelStructure, knobs: Knobs) -> None:
    if total(st) == 0:
        return  # an empty output computes nothing; TVM's fuse and split would divide by its zero extent
    if family == "injective":
        injective(sch, st, knobs)
    elif family == "row_reduce":
        row_reduce(sch, st, knobs)
    elif family == "conv2d_winograd":
        cpu_winograd.apply(sch, st, knobs, tiled_reduction)
    else:
        tiled_reduction(sch, st, knobs, family)


def _pad_lane_axis(sch, blk, st: KernelStructure, knobs: Knobs):
    """Where the vector lane tile does not divide its axis (ViT's 197 x 197 attention scores), pad the anchor's
    iteration space to whole tiles (TVM's pad_einsum) instead of guarding: a guarded lane loop is not vectorized,
    and the attention-score kernel ran at 15 GFLOP/s. The operand read along the lane axis is copied once into a
    zero-padded buffer (its own parallel, vectorized loop nest), the one padded along the rows is read in place
    under a condition uniform across the vector; the result is written back through the kernel's epilogue, or a
    copy-out block when there is none. Returns that copy-out block (None when there is an epilogue), or False
    when nothing was padded (the axis divides, or the anchor is not an einsum)."""
    last = st.spatial[-1]
    lanes = int(knobs.get(f"tile_{last.name}", 1))
    if lanes <= 1 or last.extent % lanes == 0:
        return False
    # every axis whose tile is smaller than the axis and does not divide it (a guard on the rows, in the same
    # block, also keeps the lane loop scalar: 6883 us with the lane axis alone padded); a tile at least as large
    # as its axis covers it whole, unguarded, and padding it would multiply the work
    factors = [t if t < a.extent and a.extent % t else 1
               for a, t in ((a, int(knobs.get(f"tile_{a.name}", 1))) for a in st.spatial)] + [1] * len(st.reduction)
    try:
        sch.pad_einsum(blk, factors)
    except not_applicable():
        return False
    copy_out = None
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        stmt = sch.get(block)
        name = stmt.name_hint
        if not name.endswith("_pad"):
            continue
        written = stmt.writes[0].source
        if written.name == name:  # an operand's padded copy: `<operand>_pad` writes buffer `<operand>_pad`
            read = stmt.reads[0].source if stmt.reads else None
            if read is not None and int(written.shape[-1]) == int(read.shape[-1]):
                # padded along an outer axis (A [b, m, k] along the rows): read in place, under a condition that
                # is the same for every lane
                sch.compute_inline(block)
            else:  # padded along its contiguous axis (B [b, k, n] along the lanes): copied once
                loops = sch.get_loops(block)
                sch.parallel(sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0])
                _vectorize_innermost(sch, block)
        elif st.consumers:
            sch.compute_inline(block)  # the result's copy-out: the epilogue reads the padded result
        else:
            copy_out = block
    return copy_out


def tiled_reduction(sch, st: KernelStructure, knobs: Knobs, family: str = "") -> None:
    blk = sch.get_sblock(st.anchor)
    copy_out = _pad_lane_axis(sch, blk, st, knobs) if family in PADDED_FAMILIES else False
    loops = sch.get_loops(blk)
    ns = len(st.spatial)
    spatial, red = loops[:ns], loops[ns:]
    outer, inner = [], []
    remainder_loops = []  # outer loops of splits that do not divide their axis: their last trip is guarded
    outer_names = []  # the axis of each outer loop
    for loop, a in zip(spatial, st.spatial):
        t = int(knobs.get(f"tile_{a.name}", 1))
        if t <= 1:
            outer.append(loop)
            outer_names.append(a.name)
        elif t >= a.extent:
            inner.append(loop)
        else:
            o, i = sch.split(loop, factors=[None, t])
            outer.append(o)
            outer_names.append(a.name)
            inner.append(i)
            if a.extent % t:
                remainder_loops.append(o)
    red_loops = dict(zip([a.name for a in st.reduction], red))
    order = str(knobs.get("reduction_order", "default"))
    red_names = [a.name for a in st.reduction] if order == "default" else order.split(",")
    red_outer, red_inner = [], []
    for name in red_names:
        loop = red_loops[name]
        t = int(knobs.get(f"split_{name}", 1))
        if 1 < t < st.extent(name):
            o, i = sch.split(loop, factors=[None, t])
            red_outer.append(o)
            red_inner.append(i)
            if st.extent(name) % t:
                remainder_loops.append(o)
        else:
            red_outer.append(loop)
    if knobs.get("outer_order", "channels") == "rows":
        outer = _rows_first(outer, outer_names)
    elif knobs.get("outer_order", "channels") == "panels":
        outer = _panels_first(outer, outer_names)
    depth = min(int(knobs.get("parallel", 1)), len(outer))
    # k_outer: the reduction's outer loop right inside the parallel loop, before the serial tile loops, so that a
    # cache block of the reduction (split_k long) is reused by every tile of the chunk (an L2-sized block of the
    # weight read once per chunk instead of once per row tile)
    hoist = bool(int(knobs.get("k_outer", 0))) and bool(red_inner) and depth >= 1
    if hoist:
        sch.reorder(*outer[:depth], *red_outer, *outer[depth:], *red_inner, *inner)
        tile_loop = outer[depth - 1]  # the partial sums are complete only once the chunk's k loop is done
    else:
        sch.reorder(*outer, *red_outer, *red_inner, *inner)
        tile_loop = outer[-1] if outer else None

    # The epilogue (or, without one, the copy-out of a tile-sized accumulator) runs right after each tile, while
    # the tile is still in registers or L1.
    writeback = None
    if tile_loop is not None:
        if st.consumers:
            for name in st.consumers:
                sch.reverse_compute_at(sch.get_sblock(name), tile_loop)
        elif copy_out:
            writeback = copy_out
            sch.reverse_compute_at(writeback, tile_loop)
        else:
            writeback = sch.cache_write(blk, 0, "global")
            sch.reverse_compute_at(writeback, tile_loop)

    par = None
    if depth >= 1:
        par = sch.fuse(*outer[:depth]) if depth > 1 else outer[0]
        sch.parallel(par)
    _partition_remainders(sch, [o for o in remainder_loops if not any(o.same_as(p) for p in outer[:depth])])

    for name in st.producers:
        if name in st.reducing_producers:
            continue
        pb = sch.get_sblock(name)
        if knobs.get("pad_at", "parallel") == "parallel" and par is not None:
            sch.compute_at(pb, par)
        # only a loop of the producer's own: after compute_at its innermost loop can be the shared parallel loop
        # (a producer without loops of its own, e.g. a batched matmul with m = n = k = 1), and vectorizing that
        # would vectorize the anchor's blocks too
        _vectorize_innermost(sch, pb, shared=sch.get_loops(blk))

    last_axis = st.spatial[-1]
    if inner and int(knobs.get(f"tile_{last_axis.name}", 1)) > 1:
        sch.vectorize(inner[-1])
        if int(knobs.get("unroll", 1)):
            for loop in inner[:-1]:
                sch.unroll(loop)
    elif inner and int(knobs.get("unroll", 1)):
        for loop in inner:
            sch.unroll(loop)
    if int(knobs.get("unroll", 1)) and red_outer:
        # fully unroll a short innermost reduction loop (the kernel width of a convolution)
        last_red = (red_inner or red_outer)[-1]
        name = red_names[-1]
        if st.extent(name) <= 8 and not red_inner:
            sch.unroll(last_red)
    if red_outer:
        init = sch.decompose_reduction(blk, red_outer[0])
        _vectorize_innermost(sch, init)
    for name in st.consumers:
        _vectorize_innermost(sch, sch.get_sblock(name))
    if writeback is not None:
        _vectorize_innermost(sch, writeback)


def _rows_first(outer: list, names: list[str]) -> list:
    """The outer loops of a blocked convolution with the output rows (y) moved before the output channel blocks
    (kb): [n, y, kb, x]. With the parallel loop over [n, y], each chunk pads its input rows once for every channel
    block instead of once per block tile.

    Why: the padded copy of a chunk's input rows (3 rows of every input block for a 3x3) is made per parallel chunk,
    and over [n, kb, y] every input row was copied 3 x (output blocks / kb tile) times: 24 times on a 256-channel
    layer, 5-8 % of a 3x3 layer's time against a copy-free kernel. Measured on AVX-512 (benchmarks/knob_probe.py,
    2 threads, 3 rounds in one process): 64@224 1.07x, 256@56 1.05x, 512@28 1.03x, 512@14 1.08x."""
    channels = "kb" if "kb" in names else "c"  # depthwise and pooling: [n, c, y, x, b]
    if channels not in names or "y" not in names:
        return outer
    kb, y = names.index(channels), names.index("y")  # adjacent in the templates' [n, kb, y, x, ko]
    swapped = list(outer)
    swapped[kb], swapped[y] = outer[y], outer[kb]
    return swapped


def _panels_first(outer: list, names: list[str]) -> list:
    """The outer loops of a packed dense layer with the weight panels (nb) before the rows of X (m): [nb, m]. With
    the parallel loop over nb each core streams its own share of the weight once, each panel tile read by every row
    tile while it is in L2 (with knob k_outer, one split_k-long block of it at a time)."""
    if "nb" not in names or "m" not in names:
        return outer
    m, nb = names.index("m"), names.index("nb")
    swapped = list(outer)
    swapped[m], swapped[nb] = outer[nb], outer[m]
    return swapped


def _partition_remainders(sch, loops) -> None:
    """Have TVM's loop partitioning peel the last, guarded trip off each of `loops` (serial outer loops of a
    split that does not divide its axis), so that the full tiles run without the guard.

    Why: the guard (`x_0 * 8 + x_1 < 27`) sits inside the reduction loop on every register-tile row, and LLVM
    does not unswitch it: the accumulators of the rows that may be out of range stay in memory, loaded and
    stored around every FMA. Measured on AVX-512 (benchmarks/knob_probe.py), a 3x3 32 -> 128 convolution at
    27x27: the 8 x 2 tile 496 us guarded, against 265 us for a 7-wide one. Peeled (pragma_loop_partition_hint:
    TVM's LoopPartition splits the loop where the condition's value is known), the full tiles keep all 16
    accumulators in registers. A split fused into the parallel loop is left guarded: its condition is not an
    interval of one loop variable."""
    for loop in loops:
        sch.annotate(loop, "pragma_loop_partition_hint", 1)


def _vectorize_innermost(sch, block, shared=()) -> None:
    """Vectorize the block's innermost loop, unless it is one of `shared` (loops that hold other blocks too)."""
    loops = sch.get_loops(block)
    if not loops or any(sch.get(loops[-1]).same_as(sch.get(s)) for s in shared):
        return
    try:
        sch.vectorize(loops[-1])
    except not_applicable():  # a reduction or a loop TVM cannot vectorize: leave it scalar
        pass


def row_reduce(sch, st: KernelStructure, knobs: Knobs) -> None:
    partials = {}  # reduction statement -> its per-lane partials (factored before any block moves: see _factor)
    if int(knobs.get("vector_reduce", 1)):
        lanes = host_register_tile()[0]
        for name in [*st.reducing_producers, *([st.anchor] if st.reduction else [])]:
            rf = _factor(sch, sch.get_sblock(name), vector_lanes=lanes)
            if rf is not None:
                partials[name] = rf
    out_name = st.consumers[-1] if st.consumers else st.anchor
    out = sch.get_sblock(out_name)
    loops = sch.get_loops(out)
    depth = max(0, min(int(knobs.get("parallel", 1)), len(loops) - 1 if len(loops) > 1 else 1))
    anchor_loop = None
    if depth:
        anchor_loop = sch.fuse(*loops[:depth]) if depth > 1 else loops[0]
        sch.parallel(anchor_loop)
    names = [*st.producers, st.anchor] + list(st.consumers[:-1]) if st.consumers else list(st.producers)
    for name in reversed(names):
        if name == out_name:
            continue
        blk = sch.get_sblock(name)
        if int(knobs.get("inline_producers", 0)) and name not in st.reducing_producers and name != st.anchor:
            try:
                sch.compute_inline(blk)
                continue
            except not_applicable():  # not inlinable (read at another index): it stays a staged statement
                pass
        if anchor_loop is not None:
            try:
                sch.compute_at(blk, anchor_loop)
                # the partials follow the statement they feed at once: moved after its own producers, TVM places
                # them outside the row loop
                if name in partials:
                    sch.compute_at(partials[name], anchor_loop)
            except not_applicable():  # not every producer can move under the row loop; it then runs whole, first
                pass
    if out_name in partials and anchor_loop is not None:
        try:
            sch.compute_at(partials[out_name], anchor_loop)
        except not_applicable():  # it then runs whole, first
            pass
    for rf in partials.values():
        _vectorize_partials(sch, rf)
    if int(knobs.get("vectorize", 1)):
        for name in [*names, out_name]:
            try:
                blk = sch.get_sblock(name)
            except not_applicable():  # inlined above: the statement has no block of its own any more
                continue
            _vectorize_spatial_innermost(sch, blk)


def _factor(sch, block, vector_lanes: int):
    """A reduction along a row (layer norm's mean and variance, softmax's max and sum) runs as one chain of
    dependent scalar adds; split its innermost axis by a divisor of at least half a vector and keep one partial
    result per lane (TVM's rfactor): that many independent chains, each a lane count shorter (layer norm 197x768:
    161 -> 27 us); the partials are reduced at the end of the row. Returns the partials' block, or None where a
    row has no such divisor (197) and stays scalar. The reducers are sum, max and min (the DSL has no others): reassociating them
    is exact for integers and max/min, and changes only rounding for float sums. Done before the row loop is
    formed: TVM 0.27's rfactor fails an internal check on a block already moved under a fused row loop."""
    loops = sch.get_loops(block)
    iter_types = [iv.iter_type for iv in sch.get(block).iter_vars]
    # one reduction axis, the innermost loop
    if not loops or not iter_types or iter_types[-1] == 0 or sum(t != 0 for t in iter_types) != 1:
        return None
    extent = sch.get(loops[-1]).extent
    if not hasattr(extent, "value"):
        return None
    lanes = largest_divisor(int(extent.value), vector_lanes)
    if 2 * lanes < vector_lanes or lanes == int(extent.value):
        return None
    try:
        _, inner = sch.split(loops[-1], factors=[None, lanes])
        return sch.rfactor(inner, factor_axis=len(sch.get(block).writes[0].source.shape))
    except not_applicable():  # a reduction TVM cannot factor: it stays a scalar chain
        return None


def _vectorize_partials(sch, rf) -> None:
    """The partials' lane loop innermost and unrolled: rfactor leaves it outside the remaining reduction loop.
    TVM refuses to vectorize a loop inside a reduction block, so the unrolled lanes are left to LLVM's SLP
    vectorizer (independent operations on adjacent elements)."""
    try:
        lane, red = sch.get_loops(rf)[-2:]
        sch.reorder(red, lane)
        init = sch.decompose_reduction(rf, red)
        sch.unroll(lane)
        sch.vectorize(sch.get_loops(init)[-1])
    except not_applicable():  # the loops are not (lane, reduction) after the moves: the partials stay as they are
        pass


def _vectorize_spatial_innermost(sch, block) -> None:
    loops = sch.get_loops(block)
    if not loops:
        return
    # A statement computed under the parallel row loop with no loop of its own (one element per row) would
    # otherwise vectorize that shared row loop: wrong results for everything else under it.
    if sch.get(loops[-1]).kind != 0:  # 0 = serial; the row loop is parallel
        return
    iter_types = [iv.iter_type for iv in sch.get(block).iter_vars]
    if iter_types and iter_types[-1] != 0:  # 0 = data parallel; reductions cannot be vectorized
        return
    try:
        sch.vectorize(loops[-1])
    except not_applicable():  # a loop TVM cannot vectorize (e.g. it holds a reduction's init): leave it scalar
        pass


def _blocked_image(sch, loops, st: KernelStructure) -> bool:
    """Whether an injective kernel's output loops are a blocked image's [n, c, h, w, b] (as its structure names
    them)."""
    return (image_rows(st) > 0 and len(loops) == 5
            and [int(sch.get(loop).extent) for loop in loops] == [a.extent for a in st.spatial])


def _guarded_by_remainder(block) -> bool:
    """Whether a guarded read's condition takes a remainder (a strided ConvTranspose's zero insertion: `(h + 1) % 2 <
    1`). The nest form of such a kernel computed wrong numbers (every channel count tried, vectorized or unrolled:
    tests/frontend/test_onnx_ops_spatial.py::test_conv_transpose), cause not found; it keeps the flat loop."""
    from woodpecker.schedule.tirwalk import nodes

    for node in nodes(block.body):
        if type(node).__name__ == "Call" and str(getattr(node.op, "name", "")).endswith("if_then_else"):
            if any(type(n).__name__ in ("FloorMod", "Mod") for n in nodes(node.args[0])):
                return True
    return False


def injective(sch, st: KernelStructure, knobs: Knobs) -> None:
    blocks = [*st.producers, st.anchor, *st.consumers]
    out = sch.get_sblock(blocks[-1])
    for name in blocks[:-1]:
        try:
            sch.compute_inline(sch.get_sblock(name))
        except not_applicable():  # not inlinable (e.g. a reduction): it stays a staged statement
            pass
    loops = sch.get_loops(out)
    if int(knobs.get("rows_first", 0)) and _blocked_image(sch, loops, st):
        # [n, c, h, w, b] -> [n, h, c, w, b]: the parallel loop splits the rows between the cores, as the blocked
        # layers around it do (cpu_defaults._outer_order), so each core reads the rows it wrote itself
        sch.reorder(loops[0], loops[2], loops[1])
        loops = sch.get_loops(out)
    inner = int(sch.get(loops[-1]).extent) if loops else 1
    if int(knobs.get("nest", 0)) and len(loops) > 1 and inner <= 64 and not _guarded_by_remainder(sch.get(out)):
        # the innermost axis is the vector loop and the others one parallel loop: each element's source index is
        # affine in the vector lane (a flat loop split into vectors divides and takes remainders in every lane,
        # which a layout conversion or a channel shuffle pays per element)
        # nest 2: the loop above the vector loop stays serial, out of the parallel fuse, where the index of a
        # gathered read does not depend on it (a blocked channel shuffle's source lanes are the same for every
        # pixel of a row): LLVM hoists their computation out of it instead of redoing it per vector
        keep = 2 if int(knobs.get("nest", 0)) == 2 and len(loops) > 2 else 1
        outer = sch.fuse(*loops[:-keep]) if len(loops) > keep + 1 else loops[0]
        if inner > 1:
            sch.vectorize(loops[-1])
        if int(knobs.get("parallel", 1)):
            sch.parallel(outer)
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    elements = total(st)
    vec = int(knobs.get("vector", 16))
    vec = largest_divisor(elements, vec)
    if vec > 1:
        outer, lanes = sch.split(fused, factors=[None, vec])
        sch.vectorize(lanes)
    else:
        outer = fused
    if int(knobs.get("parallel", 1)) and elements // max(vec, 1) > 1:
        sch.parallel(outer)
