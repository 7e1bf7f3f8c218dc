"""CPU schedule templates. Each takes the task's structure and a dict of knob values and transforms the TIR.

tiled_reduction  (convolutions, dense, matmul, pooling): multi-level tiling of the anchor loop nest,
    outer spatial loops (fused, parallel) -> reduction loops -> register tile (unrolled) -> vector lane loop;
    the padding block is computed per parallel chunk, the fused epilogue per register tile.
row_reduce       (softmax, layer norm, LRN, reductions): parallel over rows, every statement of a row computed
    inside the row loop, non-reduction inner loops vectorized.
injective        (elementwise chains, transposes, concatenation, layout conversion): one flat loop split into
    parallel chunks of vector lanes, or (knob `nest`) the innermost axis as the vector loop under one parallel loop.

Knob names are those of the search spaces in search_spaces/cpu/*.toml; `default_knobs` gives the values an
untuned compile uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from woodpecker.schedule.errors import not_applicable
from woodpecker.schedule.structure import KernelStructure

Knobs = Mapping[str, int | str]

VECTOR_LANES = 8  # float32 lanes of one AVX2 register
REGISTERS = 16  # vector registers available to the register tile


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in _divisors(n) if d <= max(1, limit))


# ----------------------------------------------------------------------------------------------------------------
# defaults


def default_knobs(family: str, st: KernelStructure, vector_lanes: int = 0,
                  accumulators: int = 0, registers: int = 0) -> dict[str, int | str]:
    """Heuristic knob values: what an untuned compile runs.

    The register tile (rows x vector lanes) is chosen to hold 8 accumulator vectors: measured on AVX2 (16 ymm
    registers), 8 accumulators plus the broadcast operand and weight vectors run at 140-177 GFLOP/s on ResNet
    convolutions, while 14 spill and drop to 60-90 GFLOP/s. Among tiles of equal size the full channel block and
    the wider row are preferred.

    `vector_lanes`, `accumulators` and `registers` (0: the host's, see host_register_tile; `registers` is the
    vector register count, and a target passing the first two without it gets no wide-file tile) let other
    register files reuse it:
    the simulated RISC-V targets pass their own (1 lane on scalar cores, whose 32 FP registers would otherwise
    be asked to hold 64 accumulators: 40% slower from spills on a simulated rv64gc convolution).
    """
    if not vector_lanes or not accumulators:
        host_lanes, host_accumulators = host_register_tile()
        vector_lanes = vector_lanes or host_lanes
        accumulators = accumulators or host_accumulators
        registers = registers or host_vector_file()[1]
    wide_file = registers >= 32  # 32 vector registers (AVX-512): room for a second output-channel block
    if family == "injective":
        # a nest (innermost axis as the vector loop) where that axis is short enough to be one vector: a layout
        # conversion or a channel shuffle then computes each source index affinely (the input's NCHW -> NCHW3c
        # conversion 145 -> 62 us, ShuffleNetV2's shuffles 70 -> 26 us, in one process)
        inner = st.spatial[-1].extent if st.spatial else 1
        nest = int(not st.reduction and len(st.spatial) > 1 and 2 <= inner <= 64)
        return {"vector": 16, "parallel": 1 if _total(st) >= 4096 else 0, "nest": nest}
    if family == "row_reduce":
        # partials only where the target has vector lanes (a scalar RISC-V core gains nothing from 16 chains of
        # spilled accumulators)
        return {"parallel": 1, "vectorize": 1, "inline_producers": 0, "vector_reduce": int(vector_lanes > 1)}
    knobs: dict[str, int | str] = {f"tile_{a.name}": 1 for a in st.spatial}
    last = st.spatial[-1]
    full = _lanes(last.extent, vector_lanes, padded=family in PADDED_FAMILIES)
    lane_options = [full] + ([full // 2] if full % 16 == 0 else [])
    rows = _register_rows(family, st)
    best = None
    for lanes in lane_options:
        vectors = max(1, math.ceil(lanes / vector_lanes))
        # Tiles need not divide the extent: TVM guards the remainder, and measured on 7x7 and 13x13 layers a
        # guarded 4-wide tile (135 GFLOP/s) beats the largest divisor (1 or 7: 43-114 GFLOP/s).
        first = list(range(1, min(rows[0].extent, 8) + 1)) if rows else [1]
        second = list(range(1, min(rows[1].extent, 4) + 1)) if len(rows) > 1 else [1]
        for t0 in first:
            for t1 in second:
                acc = t0 * t1 * vectors
                if acc > accumulators:
                    continue
                divisible = rows[0].extent % t0 == 0 and (len(rows) < 2 or rows[1].extent % t1 == 0) if rows else True
                score = (acc, divisible, lanes == full, t0, -t1)
                if best is None or score > best[0]:
                    best = (score, lanes, t0, t1)
    assert best is not None
    _, lanes, t0, t1 = best
    knobs[f"tile_{last.name}"] = lanes
    if rows:
        knobs[f"tile_{rows[0].name}"] = t0
    if len(rows) > 1:
        knobs[f"tile_{rows[1].name}"] = t1
    if family == "dense_packed" and t0 * max(1, math.ceil(lanes / vector_lanes)) < accumulators:
        # Few rows of X (batch-1 FC layers, M = 1): the rows alone leave the register tile with one or two
        # accumulator chains, each FMA waiting on the last. Give the spare accumulators to more weight panels (the nb
        # axis): independent chains, and as many weight streams. Measured on AVX-512 (2 threads, 5 processes,
        # benchmarks/dense_b1.py), a 4096 x 1000 layer: 297 -> 126 us with 5 panels (onnxruntime 116 us).
        nb = next(a for a in st.spatial if a.name == "nb")
        spare = accumulators // (t0 * max(1, math.ceil(lanes / vector_lanes)))
        # about 4 panels (2, 4 and 8 measured within 5 %), a divisor of the panel count where one is near
        # (1000 outputs: 125 panels of 8, so 5), else 4 with TVM's guard on the remainder
        near = [d for d in _divisors(nb.extent) if 2 <= d <= min(spare, 8)]
        knobs["tile_nb"] = min(near, key=lambda d: (abs(d - 4), -d)) if near else min(spare, 4, nb.extent)
    if family == "conv2d_nchwc" and wide_file and rows:
        kb = next((a for a in st.spatial if a.name == "kb"), None)
        window = math.prod(a.extent for a in st.reduction if a.name in ("r", "s"))
        if kb is not None and kb.extent % 2 == 0 and rows[0].extent >= 13 and window > 1:
            # Two output-channel blocks per register tile (16 accumulators of 32 registers): each input value
            # loaded feeds twice the FMAs. Measured on AVX-512 (benchmarks/knob_probe.py, 3x3 layers): 384->256
            # @13 1.20x, 64@56 1.02x, 256@56 1.03x, 512@28 1.04x, 128@112 1.05x; at 7x7 (512@7) 0.64x, where the
            # rows are short and the parallel chunks halve, so not below 13 pixels a row; and not on 1x1 layers
            # (256->64 @56 0.94x, 64->256 @56 0.85x, 144->32 @56 0.88x), whose reduction is too short to gain.
            knobs["tile_kb"] = 2
    knobs["reduction_order"] = "default"
    knobs["unroll"] = 1
    knobs["parallel"] = _default_parallel(st, knobs)
    knobs["pad_at"] = "parallel"
    return knobs


def _lanes(extent: int, vector_lanes: int, padded: bool = False) -> int:
    """The vector lane loop's length along the output's last axis: up to 64, the whole axis when it fills whole
    vectors (a channel block, a head dimension), else a divisor of at least half a vector, else one vector with
    TVM's guard on the remainder (or padding: `padded`, the families whose lane axis _pad_lane_axis pads); above
    64, its largest divisor up to 16, or one padded vector where that divisor is small.

    Why not the whole axis when it is a row of pixels (NCHW convolutions keep odd channel counts and grouped ones):
    LLVM lowers a 28- or 56-lane vector to split and shuffled pieces. Measured on AVX-512, 2 threads
    (benchmarks/knob_probe.py), 28x28 output: 1x1 58->58 218 -> 30 us with 14 lanes (onnxruntime 40 us), 3x3
    depthwise 58 153 -> 29 us (onnxruntime 94 us); 56x56 3x3 128->128 in 32 groups 537 -> 205 us (onnxruntime
    631 us). A guarded 16-lane tile on the 28-pixel row (68 us) is also slower than the divisor 14."""
    if extent > 64:
        divisor = _largest_divisor(extent, 16)
        # below half a vector: one vector where the lane axis is padded to whole tiles (_pad_lane_axis: batched
        # matrix products; ViT's 197-wide attention scores 3611 -> 362 us), else the divisor, even 1 (a guarded
        # lane loop is not vectorized: 16 guarded lanes made ViT-B/16 1.16x slower than 1)
        return vector_lanes if padded and 2 * divisor < vector_lanes else divisor
    if extent <= vector_lanes or extent % vector_lanes == 0:
        return extent
    divisor = _largest_divisor(extent, vector_lanes)
    return divisor if 2 * divisor >= vector_lanes else vector_lanes


ACCUMULATORS = 8
# the families whose anchor is an einsum (plain index reads), so that _pad_lane_axis can pad its lane axis
# (batch_matmul only: its operands are [b, m, k] and [b, k, n], so the one padded along the lane axis n is padded
# along its last, contiguous axis and copied; dense reads its weight as [n, k], where an inlined pad would put a
# per-lane condition inside the vector loop and TVM scalarizes it)
PADDED_FAMILIES = frozenset({"batch_matmul"})


def host_register_tile() -> tuple[int, int]:
    """(float32 lanes of one vector register, accumulator vectors the default register tile may hold) on the host.

    Lanes follow the host's vector width; accumulators stay at 8 (FMA latency x FMA ports of current x86 cores,
    and at most half the register file). Measured on an AVX-512 host (emeraldrapids, 2 threads), untuned
    default schedules, lanes/accumulators 8/8 (the AVX2 rule) -> 16/8: ResNet-50 3x3 64@56 1825 -> 1589 us,
    3x3 256@14 2079 -> 1677 us, 3x3 512@7 2079 -> 1906 us, BERT dense 768x768 1596 -> 1100 us, 1x1 256->64 and
    the depthwise 144@56 within 3 %; 12, 16 and 24 zmm accumulators were slower overall (geomean over the six).
    Falls back to the AVX2 values when the host cannot be detected."""
    lanes, registers = host_vector_file()
    return lanes, max(1, min(ACCUMULATORS, registers // 2))


def host_vector_file() -> tuple[int, int]:
    """(float32 lanes of one vector register, architectural vector registers) on the host: (16, 32) with AVX-512,
    (8, 16) with AVX2, and AVX2's when the host cannot be detected."""
    try:
        from woodpecker.hw.host import detect

        host = detect()
    # no TVM, or a TVM without LLVM (no such function, or the target is refused): the AVX2 register file
    except (ImportError, AttributeError, RuntimeError, ValueError):
        return VECTOR_LANES, REGISTERS
    return max(1, host.vector_bits // 32), host.vector_registers


def _register_rows(family: str, st: KernelStructure):
    """The spatial axes that form the rows of the register tile (the vector lanes run along the last axis)."""
    sp = st.spatial
    if family in ("conv2d_nchwc", "depthwise_nchwc", "pool2d") and len(sp) >= 4:
        return [sp[-2], sp[-3]]  # x then y of [n, k, y, x, lanes]
    if family == "conv2d" and len(sp) >= 4:
        return [sp[-3], sp[-4]][:1]  # output channels (k) of [n, k, y, x]; lanes run along x
    if family == "dense_packed":
        return [sp[-3]]  # m of [m, nb, lanes]
    if len(sp) >= 2:
        return [sp[-2]]
    return []


def _default_parallel(st: KernelStructure, knobs: Mapping[str, int | str]) -> int:
    """Fuse outer loops until there is enough independent work for the cores (at least 64 chunks)."""
    chunks = 1
    depth = 0
    for a in st.spatial[:-1]:
        outer = a.extent // int(knobs.get(f"tile_{a.name}", 1))
        depth += 1
        chunks *= outer
        if chunks >= 64:
            break
    return depth


def _total(st: KernelStructure) -> int:
    return math.prod(a.extent for a in st.spatial)


# ----------------------------------------------------------------------------------------------------------------
# templates


def apply(sch, family: str, st: KernelStructure, knobs: Knobs) -> None:
    if _total(st) == 0:
        return  # an empty output computes nothing; TVM's fuse and split would divide by its zero extent
    if family == "injective":
        injective(sch, st, knobs)
    elif family == "row_reduce":
        row_reduce(sch, st, knobs)
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
    for loop, a in zip(spatial, st.spatial):
        t = int(knobs.get(f"tile_{a.name}", 1))
        if t <= 1:
            outer.append(loop)
        elif t >= a.extent:
            inner.append(loop)
        else:
            o, i = sch.split(loop, factors=[None, t])
            outer.append(o)
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

    depth = min(int(knobs.get("parallel", 1)), len(outer))
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
    lanes = _largest_divisor(int(extent.value), vector_lanes)
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
    inner = int(sch.get(loops[-1]).extent) if loops else 1
    if int(knobs.get("nest", 0)) and len(loops) > 1 and inner <= 64 and not _guarded_by_remainder(sch.get(out)):
        # the innermost axis is the vector loop and the others one parallel loop: each element's source index is
        # affine in the vector lane (a flat loop split into vectors divides and takes remainders in every lane,
        # which a layout conversion or a channel shuffle pays per element)
        outer = sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0]
        if inner > 1:
            sch.vectorize(loops[-1])
        if int(knobs.get("parallel", 1)):
            sch.parallel(outer)
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    total = _total(st)
    vec = int(knobs.get("vector", 16))
    vec = _largest_divisor(total, vec)
    if vec > 1:
        outer, lanes = sch.split(fused, factors=[None, vec])
        sch.vectorize(lanes)
    else:
        outer = fused
    if int(knobs.get("parallel", 1)) and total // max(vec, 1) > 1:
        sch.parallel(outer)
