"""CPU default knobs: what an untuned compile runs, and the host register file they are sized for.

`default_knobs` gives each family's knob values (names as in search_spaces/cpu/*.toml); the templates that apply
them are in woodpecker.schedule.cpu.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from woodpecker import config
from woodpecker.schedule import cpu_winograd
from woodpecker.schedule.structure import KernelStructure

VECTOR_LANES = 8  # float32 lanes of one AVX2 register
REGISTERS = 16  # vector registers available to the register tile
# Input channels below which a convolution keeps one output-channel block per register tile on a wide register file
WIDE_TILE_MIN_INPUT_CHANNELS = 16
# Families whose default outer order may put the output rows first (_outer_order), and which of their layers:
# "all", or "padded" (only those with a window whose input is padded)
ROWS_FIRST = {"conv2d_nchwc": "all", "depthwise_nchwc": "all", "pool2d": "all"}
# Data movement and element-wise kernels on a blocked image [n, c, h, w, b] split its rows between the cores too
INJECTIVE_ROWS_FIRST = True
# Rows of X from which a packed dense layer runs its weight panels outermost (outer_order "panels")
PANEL_ORDER_MIN_ROWS = 16


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def largest_divisor(n: int, limit: int) -> int:
    return max(d for d in divisors(n) if d <= max(1, limit))


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
    if family == "conv2d_winograd":
        return cpu_winograd.default_knobs(st, vector_lanes, registers)
    # the host's cores and caches; a register file without its register count is a simulated target's (one core,
    # caches of its own), which the L2 bound of dense panels and the rows-first rules below leave alone
    on_host = registers > 0
    if family == "injective":
        # a nest (innermost axis as the vector loop) where that axis is short enough to be one vector: a layout
        # conversion or a channel shuffle then computes each source index affinely (the input's NCHW -> NCHW3c
        # conversion 145 -> 62 us, ShuffleNetV2's shuffles 70 -> 26 us, in one process)
        inner = st.spatial[-1].extent if st.spatial else 1
        nest = int(not st.reduction and len(st.spatial) > 1 and 2 <= inner <= 64)
        if nest and _row_loop_serial(st):
            nest = 2
        knobs = {"vector": 16, "parallel": 1 if total(st) >= 4096 else 0, "nest": nest}
        if on_host:
            # rows before channel blocks on a blocked image whose rows give every core 4 chunks, as the layers
            # around it (_outer_order)
            knobs["rows_first"] = int(INJECTIVE_ROWS_FIRST and every_core_has(image_rows(st), 4))
        return knobs
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
        near = [d for d in divisors(nb.extent) if 2 <= d <= min(spare, 8)]
        knobs["tile_nb"] = min(near, key=lambda d: (abs(d - 4), -d)) if near else min(spare, 4, nb.extent)
    panels = (family == "dense_packed" and on_host and bool(rows) and rows[0].extent >= PANEL_ORDER_MIN_ROWS
              and _weight_bytes(st) > host_l2_bytes())
    if panels:
        # Many rows of X (a transformer's tokens) and a weight larger than a core's L2: weight panels outermost,
        # each core streaming its own share of the weight once, a panel pair held in L2 while every row tile reads
        # it, instead of the whole weight streamed again from L3 (or memory) for every 8 rows. Measured on AVX-512
        # (2 threads; benchmarks/ab_in_process.py --rule dense-panels): ViT-B/16 1.125x (1.059-1.132), most of it
        # while the VM's two vCPUs sat on different L3s (a 350 ns inter-core round trip instead of 60), where the
        # re-streamed weight came from memory. A one-off probe of the two parts apart (builds alternated in one
        # process, a shared L3): 1.05-1.07x from the order alone, 1.06-1.08x with 12 accumulators (6 rows x 2 panels
        # of 32 registers). BERT's 256-wide layers (weights of 0.25-1 MiB, in L2) were 1-4 % faster the old way in
        # a per-kernel probe, hence the L2 bound.
        nb = next(a for a in st.spatial if a.name == "nb")
        if wide_file and nb.extent >= 2 and math.ceil(lanes / vector_lanes) == 1:
            knobs[f"tile_{rows[0].name}"], knobs["tile_nb"] = 6, 2
        knobs["outer_order"] = "panels"
    if family == "conv2d_nchwc" and wide_file and rows:
        kb = next((a for a in st.spatial if a.name == "kb"), None)
        if (kb is not None and kb.extent % 2 == 0 and rows[0].extent >= 7 and _window(st) > 1
                and _input_channels(st) >= WIDE_TILE_MIN_INPUT_CHANNELS):
            # Two output-channel blocks per register tile (16 accumulators of 32 registers): each input value
            # loaded feeds twice the FMAs. Measured on AVX-512 (benchmarks/knob_probe.py, 3x3 layers): 384->256
            # @13 1.20x, 64@56 1.02x, 256@56 1.03x, 512@28 1.04x, 128@112 1.05x; at 7x7 1.10x (512@7) and 1.11x
            # (160->320) over one block, with the 2-row tile's remainder out of the parallel loop (_default_parallel;
            # before that, guarded in it, 0.64x); not on 1x1 layers (256->64 @56 0.94x, 64->256 @56 0.85x, 144->32
            # @56 0.88x), whose reduction is too short to gain; nor on a network's first layer (3 input channels:
            # each tile's 27-147 FMAs per accumulator leave the second block only its stores), where one block is
            # 1.36x on VGG's 3x3 3 -> 64 @224 (benchmarks/knob_probe.py conv 3,64,224) and the whole model
            # 1.00-1.015x (benchmarks/ab_in_process.py --rule stem-blocks: MobileNetV2, ResNet-18, DenseNet, VGG).
            knobs["tile_kb"] = 2
    knobs["reduction_order"] = "default"
    knobs["unroll"] = 1
    # one core (a simulated target): rows first only where it saves padding
    which = ROWS_FIRST.get(family) if on_host else {"conv2d_nchwc": "padded"}.get(family)
    if which and rows:
        knobs["outer_order"] = _outer_order(st, knobs, which)
    if knobs.get("outer_order") == "rows":
        knobs["parallel"] = 2  # [n, y]: each chunk's padded rows serve every output block
    elif panels:
        # the panels alone where they give every core 4 chunks (TVM hands each thread one contiguous share of the
        # parallel loop, so more chunks do not balance better), else fused with the rows
        knobs["parallel"] = 1 if every_core_has(nb.extent // int(knobs["tile_nb"]), 4) else 2  # nb: found above
    else:
        knobs["parallel"] = _default_parallel(st, knobs, serial_remainders=family == "conv2d_nchwc")
    knobs["pad_at"] = "parallel"
    return knobs


def every_core_has(chunks: int, per_core: int) -> bool:
    """Whether `chunks` parallel chunks give each of the configured threads at least `per_core`."""
    return chunks >= per_core * max(1, config.get().num_threads)


def image_rows(st: KernelStructure) -> int:
    """The rows (h) of a blocked image [n, c, h, w, b] an injective kernel writes; 0 for any other output."""
    names = [a.name for a in st.spatial]
    return st.spatial[2].extent if names == ["n", "c", "h", "w", "b"] else 0


def _weight_bytes(st: KernelStructure) -> int:
    """Bytes of a packed dense layer's float32 weight: the reduction (K) times the output columns (nb x lanes)."""
    return 4 * math.prod(a.extent for a in st.reduction) * math.prod(a.extent for a in st.spatial[1:])


def host_l2_bytes() -> int:
    """The host's per-core L2 cache in bytes (1 MiB where it cannot be read)."""
    try:
        from woodpecker.hw.host import detect

        l2 = detect().l2_bytes
    except (ImportError, AttributeError, RuntimeError, ValueError):
        l2 = None
    return l2 or 1 << 20


def _input_channels(st: KernelStructure) -> int:
    """Input channels a convolution reduces over (its reduction axes other than the window's R and S)."""
    return math.prod(a.extent for a in st.reduction if a.name not in ("r", "s"))


def _window(st: KernelStructure) -> int:
    """Positions of a convolution's window (R x S; 1 for a 1x1 or a kernel without one)."""
    return math.prod(a.extent for a in st.reduction if a.name in ("r", "s"))


def _row_loop_serial(st: KernelStructure) -> bool:
    """Whether an injective nest keeps its second-innermost loop serial (knob nest = 2): where the loops above it
    still give every core 4 chunks. Why: the vector lanes' source indices are then computed once per row and
    hoisted by LLVM out of that loop, instead of once per vector from the fused parallel index (a blocked channel
    shuffle's gathered lanes at 56x56 67 us against 149 us; layout conversions 1.2-1.6x, in one process)."""
    if len(st.spatial) < 3 or st.spatial[-2].extent < 2:
        return False
    outer = math.prod(a.extent for a in st.spatial[:-2])
    return every_core_has(outer, 4)


def _outer_order(st: KernelStructure, knobs: Mapping[str, int | str], which: str = "all") -> str:
    """Rows before channel blocks (woodpecker.schedule.cpu._rows_first: the parallel loop over [n, y]) where the
    output rows give every core at least 4 chunks; short images (7x7 rows in tiles of 2 on 2 cores would leave 4
    chunks, 7 rows on 2 cores split 4:3) keep the channel order; with `which` "padded", so do the layers without a
    padded window (ROWS_FIRST says which layers of each family).

    Why rows, in two parts. A convolution with a window pads its input per parallel chunk, and over rows each chunk's
    padded rows serve every output block (_rows_first). And every layer that splits its rows between the cores the
    same way leaves each core reading what it wrote itself in the layer before: with the channel blocks split
    instead, half of each layer's input sat in the other core's cache. On these VMs the host at times places the two
    vCPUs on different L3s (common.core_roundtrip_ns in the benchmarks: ~350 ns instead of ~60), and there
    MobileNetV2's layers ran 1.5-4x slower than on a shared L3, the 40 us ones the worst. Rows first for 1x1
    convolutions, depthwise convolutions and pooling as well (benchmarks/ab_in_process.py --rule rows-everywhere,
    with the share of blocks run with the vCPUs apart): DenseNet-121 1.203x (79 %), ShuffleNetV2 1.244x (65 %),
    MobileNetV2 1.058x (20 %); on a shared L3 within 1 % (ResNet-18 0.996x, ResNet-50 1.006x, MobileNetV3 1.007x)."""
    y = next((a for a in st.spatial if a.name == "y"), None)
    if y is None or (which == "padded" and (_window(st) <= 1 or not st.producers)):
        return "channels"
    row_tiles = y.extent // int(knobs.get("tile_y", 1))
    return "rows" if every_core_has(row_tiles, 4) else "channels"


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
        divisor = largest_divisor(extent, 16)
        # below half a vector: one vector where the lane axis is padded to whole tiles (_pad_lane_axis: batched
        # matrix products; ViT's 197-wide attention scores 3611 -> 362 us), else the divisor, even 1 (a guarded
        # lane loop is not vectorized: 16 guarded lanes made ViT-B/16 1.16x slower than 1)
        return vector_lanes if padded and 2 * divisor < vector_lanes else divisor
    if extent <= vector_lanes or extent % vector_lanes == 0:
        return extent
    divisor = largest_divisor(extent, vector_lanes)
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


def _default_parallel(st: KernelStructure, knobs: Mapping[str, int | str], serial_remainders: bool = False) -> int:
    """Fuse outer loops until there is enough independent work for the cores (at least 64 chunks); with
    `serial_remainders` (the blocked convolutions), not a split whose tile does not divide its axis once every core
    has two chunks: fused into the parallel loop its last trip stays guarded inside the reduction
    (woodpecker.schedule.cpu._partition_remainders peels only serial loops). Measured on AVX-512
    (benchmarks/knob_probe.py, 2 threads, 3 rounds), 7x7 layers whose 2-row tiles (7 = 3 x 2 + 1) were fused: 512@7
    3x3 1.04-1.05x, 160 -> 320 @7 1.07x, a 5x5 48 -> 128 @7 1.08x. The other families (pooling, depthwise, dense),
    unmeasured per kernel, fuse as before."""
    chunks = 1
    depth = 0
    for a in st.spatial[:-1]:
        tile = int(knobs.get(f"tile_{a.name}", 1))
        if serial_remainders and depth and every_core_has(chunks, 2) and 1 < tile < a.extent and a.extent % tile:
            break
        outer = a.extent // tile
        depth += 1
        chunks *= outer
        if chunks >= 64:
            break
    return depth


def total(st: KernelStructure) -> int:
    return math.prod(a.extent for a in st.spatial)
