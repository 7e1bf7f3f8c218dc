"""GPU (CUDA) schedule templates: task structure + knob values -> TIR bound to thread blocks and threads.

tiled       (conv2d, dense, dense_packed, batch_matmul, pool2d, and the blocked-layout convolutions):
    every spatial axis of the anchor is split [block, vthread, thread, inner] by the knobs vthread_<a>,
    thread_<a> and inner_<a> (an axis without knobs stays whole in the block level); the loops are ordered
        block*  vthread*  thread*  reduction-outer*  reduction-inner*  inner*
    and each of the three outer levels is fused and bound to blockIdx.x / vthread.x / threadIdx.x (threadIdx.x
    runs fastest along the last axis, the contiguous one, so that warps access consecutive addresses). The
    inner tile accumulates in registers (cache_write "local", or the anchor itself in "local" scope when an
    epilogue follows) and is written back per thread together with the epilogue. split_<r> is the inner extent
    of reduction axis r: with stage=1 the operands one reduction step needs (the weight / input tiles and the
    padded input) are staged in shared memory (cache_read "shared"), fetched cooperatively by all threads of
    the block with `vector` wide loads where every widened access is provably aligned, optionally with padded
    rows (pad_smem) against bank conflicts. `unroll` is TVM's pragma_auto_unroll_max_step on the block loop
    (explicit unrolling).
row_reduce  (softmax, layer norm, LRN, reductions, global pooling):
    rows (the output axes the reduction result is indexed by) -> blockIdx.x x threadIdx.y (rows_per_block);
    every statement of a row is computed inside the row loop with its loop over the row's elements split
    across `threads` threads (threadIdx.x): reductions become cooperative cross-thread reductions (warp
    shuffles and shared memory, lowered by TVM), elementwise statements are spread over the threads. threads=1
    gives one thread per row (rows_per_block rows per block). Per-row intermediates live in shared memory;
    inline_producers recomputes elementwise intermediates instead (softmax's exp).
injective   (elementwise chains, data movement):
    every statement inlined into the output, whose flattened loop is split [block, threadIdx.x (threads),
    vector lanes].

`default_knobs(family, structure)` gives the untuned schedule; knob names are those of
search_spaces/gpu/*.toml. `space_constraints` derives, from the kernel's accesses, the shared memory a staged
point needs (an expression over knob names the search space checks before any build); `space_env` adds the
device limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from woodpecker.dsl import ast
from woodpecker.schedule.errors import not_applicable
from woodpecker.schedule.structure import KernelStructure
from woodpecker.schedule.tirwalk import is_load, load_buffer, nodes

Knobs = Mapping[str, int | str]

# The limits every supported GPU meets (TVM's CUDA tags: 48 KB of static shared memory per block on every
# architecture, 1024 threads, 64 K registers); profiles may pass their own.
LIMITS = {
    "max_threads_per_block": 1024,
    "max_shared_memory_per_block": 49152,
    "registers_per_block": 65536,
    "thread_warp_size": 32,
}
FLOAT_BYTES = 4

TILED = ("conv2d", "conv2d_nchwc", "depthwise_nchwc", "dense", "dense_packed", "batch_matmul", "pool2d")
ROW = ("row_reduce", "global_pool")


COOPERATIVE = ("dense", "dense_packed")  # families that may also run as one cooperative reduction per output


def template_of(family: str, st: KernelStructure, knobs: Knobs | None = None) -> str:
    if family == "injective" or not st.reduction:
        return "injective"  # e.g. a global pool over a 1x1 map has nothing to reduce
    if family in ROW:
        return "row_reduce"
    if family in COOPERATIVE and knobs is not None and int(knobs.get("cooperative", 0)):
        return "row_reduce"  # matrix-vector products: the threads of a block share one output's reduction
    return "tiled"


# ------------------------------------------------------------------------------------------------------------
# defaults


def _pow2_at_most(n: int, cap: int) -> int:
    p = 1
    while p * 2 <= min(n, cap):
        p *= 2
    return p


def _tiled_axes(family: str, st: KernelStructure) -> list[str]:
    """The spatial axes that get thread and register tiles, outermost first (the others stay in the grid)."""
    names = [a.name for a in st.spatial]
    if family == "batch_matmul":
        return names[-2:]
    if family in ("conv2d", "pool2d", "conv2d_nchwc", "depthwise_nchwc"):
        return names[1:]  # all but the batch
    return names


def _register_axes(family: str, st: KernelStructure, axes: list[str]) -> list[str]:
    """Axes whose register tile reuses an operand: output channels of a convolution (each input value serves
    several filters), both axes of a matrix product (each loaded row / column serves several outputs)."""
    if family == "conv2d":
        return [axes[0]]  # k: the input pixel is reused across output channels
    if family == "conv2d_nchwc":
        return [axes[0], axes[-1]]
    if family in ("dense", "batch_matmul"):
        return axes[-2:]
    if family == "dense_packed":
        return [axes[0], axes[1]]
    return []  # depthwise and pooling: no operand is shared between outputs of different threads' tiles


def default_knobs(family: str, st: KernelStructure, kernel: ast.Kernel | None = None) -> dict[str, int | str]:
    """A sane untuned schedule, valid on every supported GPU (<= 256 threads, shared memory <= 48 KB).

    Tiled families: the thread and register tiles (dividing their axes) are chosen by `_choose_tiles`: first
    enough blocks for two per SM of a 108-SM GPU, then the most operand reuse per reduction step, then
    coalescing along the innermost axis, then more threads. With 16 or more reduction steps the operands are
    staged in shared memory 8-16 steps of the first reduction axis at a time, shrunk until the staged tiles
    fit (checked with the same expression the search space uses, when `kernel` is given); k-major tiles get
    odd row pitches against bank conflicts. Matrix-vector dense layers use one cooperative reduction per
    output. Row reductions: one block per row with up to 256 cooperating threads, or one thread per row for
    rows of 16 elements or fewer.
    """
    template = template_of(family, st)
    if template == "injective":
        return {"threads": 256, "vector": 1, "unroll": 0}
    if template == "row_reduce":
        row_elems = math.prod(a.extent for a in st.reduction)
        threads = 1 if row_elems <= 16 else max(32, _pow2_at_most(row_elems, 256))
        rows = math.prod(a.extent for a in st.spatial)
        rows_per_block = min(128, _pow2_at_most(rows, 128)) if threads == 1 else 1
        return {"threads": threads, "rows_per_block": rows_per_block, "inline_producers": 1, "unroll": 64}
    axes = _tiled_axes(family, st)
    ext = {a.name: a.extent for a in st.spatial}
    reduction = math.prod(a.extent for a in st.reduction)
    knobs: dict[str, int | str] = {}
    for name in axes:
        knobs.update({f"thread_{name}": 1, f"inner_{name}": 1, f"vthread_{name}": 1})
    tiles = _choose_tiles(family, st, axes, ext, kernel, reduction)
    for name, (t, i) in tiles.items():
        knobs[f"thread_{name}"], knobs[f"inner_{name}"] = t, i
    knobs["stage"] = 1 if reduction >= 16 and family != "pool2d" else 0
    for a in st.reduction:
        knobs[f"split_{a.name}"] = a.extent
    first = st.reduction[0] if st.reduction else None
    if knobs["stage"] and first is not None:
        knobs[f"split_{first.name}"] = _largest_divisor(
            first.extent, 8 if any(int(knobs[f"inner_{n}"]) > 1 for n in axes) else 16
        )
    knobs["vector"] = 1
    # tiles whose rows run along the reduction (k-major: X[m, k] of a matrix product) are read down their
    # columns by the threads of a warp: an odd row pitch keeps those reads in different banks
    knobs["pad_smem"] = int(bool(knobs["stage"]) and kernel is not None and _column_reads(st, kernel))
    knobs["unroll"] = 512 if any(int(knobs[f"inner_{n}"]) > 1 for n in axes) else 64
    if knobs["stage"] and kernel is not None:
        _fit_shared(knobs, family, st, kernel)
    if family in COOPERATIVE:
        # a matrix-vector product (a few rows) has too few outputs to fill the GPU one thread per output: the
        # threads of a block reduce one output together instead
        row_elems = reduction
        knobs["cooperative"] = 1 if ext[axes[0]] <= 4 and row_elems >= 128 else 0
        knobs.update(
            {"threads": max(32, _pow2_at_most(row_elems, 256)), "rows_per_block": 1, "inline_producers": 1}
        )
    return knobs


def _operand_axes(
    family: str, st: KernelStructure, kernel: ast.Kernel | None, axes: list[str]
) -> list[set[str]]:
    """For each operand the anchor reads, the tiled axes its index depends on (its tile grows with those)."""
    if kernel is None:
        return [set(axes)]
    anchor = kernel.statement(st.anchor)
    value = anchor.value.body if isinstance(anchor.value, ast.Reduce) else anchor.value
    out = []
    for acc in _accesses(value):
        names: set[str] = set()
        stack = list(acc.indices)
        while stack:
            e = stack.pop()
            if isinstance(e, ast.Var) and e.name in axes:
                names.add(e.name)
            stack.extend(_children(e))
        out.append(names)
    return out or [set(axes)]


def _choose_tiles(
    family: str,
    st: KernelStructure,
    axes: list[str],
    ext: Mapping[str, int],
    kernel: ast.Kernel | None,
    reduction: int,
) -> dict[str, tuple[int, int]]:
    """(threads, inner) per tiled axis, maximizing (a warp or more of threads, min(blocks, 216), operand
    reuse, coalescing, threads): 216 blocks are two per SM of a 108-SM GPU.

    Operand reuse is the multiply-adds of a block tile per element staged for one step of the first reduction
    axis (a 64x64 matrix tile: 4096 / (64 + 64) = 32; a convolution counts its input halo and kernel window).
    Threads per block stay within 256 (at least 32 unless the output is smaller or the axes' divisors allow no
    more), register tiles within 16 accumulators, on the axes whose tiles reuse an operand.
    """
    import itertools

    from woodpecker.space.expr import compile_expr, evaluate

    operands = _operand_axes(family, st, kernel, axes)
    staged = None  # shared-memory bytes of one step of the first reduction axis, as a function of the tiles
    env = {**space_env(st, kernel), **{f"ext_{a.name}": a.extent for a in st.spatial + st.reduction}}
    if kernel is not None and st.reduction:
        cons = space_constraints(family, st, kernel)
        if cons:
            staged = compile_expr(cons[0][0].split(" <= ")[0].removeprefix("stage == 0 or "))
            env.update({f"split_{a.name}": a.extent for a in st.reduction[1:]}, pad_smem=0, stage=1)
            env[f"split_{st.reduction[0].name}"] = 1
    work_per_step = math.prod(a.extent for a in st.reduction[1:])
    reg_axes = set(_register_axes(family, st, axes)) if reduction >= 32 else set()
    outputs = math.prod(ext[n] for n in axes)
    min_threads = min(32, outputs)
    choices = []
    for name in axes:
        opts = []
        for i in (1, 2, 4) if name in reg_axes else (1,):
            if ext[name] % i:
                continue
            for t in range(1, min(ext[name] // i, 32 if name == axes[-1] else 64) + 1):
                if (ext[name] // i) % t == 0:
                    opts.append((t, i))
        choices.append(opts)
    best, best_score = None, None
    for combo in itertools.product(*choices):
        threads = math.prod(t for t, _ in combo)
        if threads > 256 or math.prod(i for _, i in combo) > 16:
            continue
        tile = {n: t * i for n, (t, i) in zip(axes, combo)}
        blocks = math.prod(ext[n] // tile[n] for n in axes) * math.prod(
            a.extent for a in st.spatial if a.name not in tile
        )
        if staged is not None:
            point = {
                f"{k}_{n}": v for n, (t, i) in zip(axes, combo) for k, v in (("thread", t), ("inner", i))
            }
            point.update({f"vthread_{n}": 1 for n in axes})
            loads = evaluate(staged, {**env, **point}) / FLOAT_BYTES  # halos and kernel windows included
            reuse = math.prod(tile.values()) * work_per_step / max(1.0, loads)
        else:
            loads = sum(math.prod(tile[n] for n in used) for used in operands)
            reuse = math.prod(tile.values()) / max(1, loads)
        last_t = combo[-1][0]
        # a warp's worth of threads when the axes allow it (prime extents may not)
        score = (threads >= min_threads, min(blocks, 216), round(reuse, 3), min(last_t, 8), threads)
        if best_score is None or score > best_score:
            best, best_score = combo, score
    assert best is not None
    return dict(zip(axes, best))


def _column_reads(st: KernelStructure, kernel: ast.Kernel) -> bool:
    anchor = kernel.statement(st.anchor)
    value = anchor.value.body if isinstance(anchor.value, ast.Reduce) else anchor.value
    red = {a.name for a in st.reduction}
    for acc in _accesses(value):
        if len(acc.indices) < 2:
            continue
        names, stack = set(), [acc.indices[-1]]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.Var):
                names.add(e.name)
            stack.extend(_children(e))
        if names and names <= red:
            return True
    return False


def _fit_shared(knobs: dict[str, int | str], family: str, st: KernelStructure, kernel: ast.Kernel) -> None:
    """Shrink the staged reduction step (then the kernel window, then stop staging) until the tiles fit."""
    from woodpecker.space.expr import compile_expr, evaluate

    checks = [compile_expr(e) for e, _ in space_constraints(family, st, kernel)]
    env = {**space_env(st, kernel), **{f"ext_{a.name}": a.extent for a in st.spatial + st.reduction}}

    def fits() -> bool:
        return all(evaluate(c, {**env, **knobs}) for c in checks)

    for a in st.reduction:
        while not fits() and int(knobs[f"split_{a.name}"]) > 1:
            knobs[f"split_{a.name}"] = _largest_divisor(a.extent, int(knobs[f"split_{a.name}"]) // 2)
    if not fits():
        knobs["stage"] = knobs["pad_smem"] = 0


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


# ------------------------------------------------------------------------------------------------------------
# search-space support: device limits and the shared memory of a staged point


def space_env(
    st: KernelStructure | None = None,
    kernel: ast.Kernel | None = None,
    limits: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Names GPU constraints may use: the device limits (TVM's CUDA target names; the common limits of every
    supported GPU unless a profile gives its own), and for row reductions `rows` (rows of the reduction),
    `row_elems` (elements reduced per row) and `row_staged_bytes` (bytes per row of the elementwise
    intermediates that are kept in shared memory unless inlined)."""
    env = {**LIMITS, **{k: int(v) for k, v in (limits or {}).items() if k in LIMITS}}
    if st is not None:
        rows = math.prod(a.extent for a in st.spatial)
        env["rows"] = rows
        env["row_elems"] = math.prod(a.extent for a in st.reduction)
        staged = 0
        if kernel is not None:
            out = kernel.output
            for s in kernel.computes:
                if (
                    s.name in (out, st.anchor)
                    or s.name in st.reducing_producers
                    or isinstance(s.value, ast.Reduce)
                ):
                    continue
                staged += math.prod(int(a.extent.value) for a in s.axes)  # type: ignore[union-attr]
        env["row_staged_bytes"] = FLOAT_BYTES * math.ceil(staged / max(1, rows))
    return env


def space_constraints(family: str, st: KernelStructure, kernel: ast.Kernel) -> list[tuple[str, str]]:
    """(expression, why) pairs that bound the shared memory of the tiled template's staged operands.

    The footprint of each staged operand is its access's span over one block tile and one reduction step, per
    dimension, as an expression over knob names; the template stages exactly these operands.
    """
    if template_of(family, st) != "tiled":
        return []
    anchor = kernel.statement(st.anchor)
    red = {a.name for a in st.reduction}
    tiled_axes = set(_tiled_axes(family, st))
    # untiled spatial axes contribute one index per block tile
    sizes = {a.name: a.extent for a in st.spatial if a.name in tiled_axes}
    sizes.update({a.name: a.extent for a in st.reduction})
    fixed = {a.name for a in st.spatial if a.name not in tiled_axes}
    value = anchor.value.body if isinstance(anchor.value, ast.Reduce) else anchor.value
    shapes = {p.name: [int(d.value) for d in p.shape] for p in kernel.params}  # type: ignore[union-attr]
    for s in kernel.computes:
        shapes.setdefault(s.name, [int(a.extent.value) for a in s.axes])  # type: ignore[union-attr]
    terms = []
    seen = set()
    for acc in _accesses(value):
        if acc.tensor in seen or acc.tensor not in shapes:
            continue
        seen.add(acc.tensor)
        dims = []
        for i, (idx, size) in enumerate(zip(acc.indices, shapes[acc.tensor])):
            span = _span(idx, red, sizes) if not _uses_only(idx, fixed) else "1"
            dim = f"min({size}, {span})"
            if i == len(acc.indices) - 1 and len(acc.indices) >= 2:
                # pad_smem makes the row pitch odd (storage_align factor 2, offset 1)
                dim = f"({dim} + pad_smem * ((1 - {dim}) % 2))"
            dims.append(dim)
        terms.append(" * ".join(dims) or "1")
    if not terms:
        return []
    expr = f"stage == 0 or {FLOAT_BYTES} * ({' + '.join(terms)}) <= max_shared_memory_per_block"
    out = [(expr, "the operand tiles staged for one reduction step must fit the shared memory of a block")]
    # Measured: when a tile does not divide its axis, TVM's region analysis of the staged tile falls back to a
    # loose bound (a 32x8x16 depthwise input tile allocated 67712 B instead of 16512 B; a 14-row axis in tiles
    # of 8 staged 12 rows), so staged points use dividing tiles only (predicated fetches are slow anyway).
    for name in sorted(tiled_axes):
        out.append(
            (
                f"stage == 0 or ext_{name} % (vthread_{name} * thread_{name} * inner_{name}) == 0",
                "a staged block tile must divide its axis (else TVM over-allocates the staged tile)",
            )
        )
    for a in st.reduction:
        out.append(
            (
                f"stage == 0 or ext_{a.name} % split_{a.name} == 0",
                "a staged reduction step must divide its axis (else TVM over-allocates the staged tile)",
            )
        )
    return out


def _uses_only(e: ast.Expr, names: set[str]) -> bool:
    """True when every variable of `e` is one of `names` (a block-level index: one value per tile)."""
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, ast.Var) and x.name not in names:
            return False
        stack.extend(_children(x))
    return True


def _accesses(e: ast.Expr):
    if isinstance(e, ast.Access):
        yield e
        return
    for child in _children(e):
        yield from _accesses(child)


def _children(e: ast.Expr):
    if isinstance(e, (ast.BinOp,)):
        return (e.lhs, e.rhs)
    if isinstance(e, (ast.Neg, ast.Not)):
        return (e.operand,)
    if isinstance(e, ast.Call):
        return e.args
    if isinstance(e, (ast.Compare, ast.BoolOp)):
        return e.operands
    if isinstance(e, ast.IfElse):
        return (e.cond, e.then, e.otherwise)
    if isinstance(e, ast.Reduce):
        return (e.body,)
    return ()


def _tile(name: str, red: set[str], sizes: Mapping[str, int]) -> str:
    """Elements of axis `name` in one block tile (spatial) or one reduction step, as an expression."""
    if name in red:
        return f"min({sizes[name]}, split_{name})"
    return f"(vthread_{name} * thread_{name} * inner_{name})"


def _span(e: ast.Expr, red: set[str], sizes: Mapping[str, int]) -> str:
    """Upper bound of max - min + 1 of index `e` over a tile, as an expression (interval arithmetic)."""
    width = _width(e, red, sizes)
    return f"{width} + 1"


def _width(e: ast.Expr, red: set[str], sizes: Mapping[str, int]) -> str:
    """max - min of `e` over a tile (0 for constants)."""
    if isinstance(e, ast.IntLit):
        return "0"
    if isinstance(e, ast.Var):
        return f"({_tile(e.name, red, sizes)} - 1)" if e.name in sizes else "0"  # untiled axes: one value
    if isinstance(e, ast.BinOp):
        if e.op in "+-":
            return f"({_width(e.lhs, red, sizes)} + {_width(e.rhs, red, sizes)})"
        if e.op == "*":
            for a, b in ((e.lhs, e.rhs), (e.rhs, e.lhs)):
                if isinstance(b, ast.IntLit):
                    return f"({abs(b.value)} * {_width(a, red, sizes)})"
        # a floor division (the group of a grouped convolution) is bounded by the whole dimension: TVM's bound
        # for an unaligned window of quotients was measured looser than any tight formula (2112 B for 1848 B
        # predicted)
        if e.op == "%" and isinstance(e.rhs, ast.IntLit) and e.rhs.value > 0:
            return f"min({e.rhs.value - 1}, {_width(e.lhs, red, sizes)})"
    if isinstance(e, ast.Neg):
        return _width(e.operand, red, sizes)
    # anything else (data-dependent or non-affine): the whole dimension, clamped by the caller
    return "1000000000"


# ------------------------------------------------------------------------------------------------------------
# templates


def apply(sch, family: str, st: KernelStructure, knobs: Knobs) -> None:
    template = template_of(family, st, knobs)
    if template == "injective":
        injective(sch, st, knobs)
    elif template == "row_reduce":
        row_reduce(sch, st, knobs)
    else:
        tiled(sch, st, knobs)


def _knob(knobs: Knobs, name: str, default: int) -> int:
    return int(knobs.get(name, default))


def tiled(sch, st: KernelStructure, knobs: Knobs) -> None:
    blk = sch.get_sblock(st.anchor)
    # Padding (and any other elementwise producer) is either staged in shared memory per reduction step or
    # recomputed inline in the inner loop; on a GPU it never runs as a separate pass over global memory.
    stage = _knob(knobs, "stage", 0) == 1
    producers = [p for p in st.producers if p not in st.reducing_producers]
    if not stage:
        for name in producers:
            sch.compute_inline(sch.get_sblock(name))
    loops = sch.get_loops(blk)
    ns = len(st.spatial)
    spatial, red = loops[:ns], loops[ns:]
    levels: list[list] = [[], [], [], []]  # block, vthread, thread, inner
    for loop, a in zip(spatial, st.spatial):
        v, t, i = (_knob(knobs, f"{k}_{a.name}", 1) for k in ("vthread", "thread", "inner"))
        if v * t * i == 1:
            levels[0].append(loop)
            continue
        parts = sch.split(loop, factors=[None, v, t, i])
        for level, part in zip(levels, parts):
            level.append(part)
    red_outer, red_inner = [], []
    for loop, a in zip(red, st.reduction):
        s = _knob(knobs, f"split_{a.name}", a.extent)
        if 1 <= s < a.extent:
            o, i = sch.split(loop, factors=[None, s])
            red_outer.append(o)
            red_inner.append(i)
        else:
            red_inner.append(loop)
    if stage and red_inner and not red_outer:
        # Staging the whole reduction still needs a loop inside the thread loops to stage at: computed at the
        # fused block loop instead, TVM over-approximates the region (a 3x224x224 input tile measured 417 KB).
        o, i = sch.split(red_inner[0], factors=[1, None])
        red_outer.append(o)
        red_inner[0] = i
    sch.reorder(*levels[0], *levels[1], *levels[2], *red_outer, *red_inner, *levels[3])
    bx = sch.fuse(*levels[0]) if len(levels[0]) > 1 else levels[0][0]
    vt = _fuse_bind(sch, levels[1], "vthread.x")
    tx = _fuse_bind(sch, levels[2], "threadIdx.x")
    sch.bind(bx, "blockIdx.x")
    threads = math.prod(_knob(knobs, f"thread_{a.name}", 1) for a in st.spatial)
    thread_loop = tx or vt or bx

    # The accumulator tile lives in registers; the epilogue (or the plain copy-out) runs per thread right
    # after it.
    if st.consumers:
        sch.set_scope(blk, 0, "local")
        for name in st.consumers[:-1]:
            sch.compute_inline(sch.get_sblock(name))
        sch.reverse_compute_at(sch.get_sblock(st.consumers[-1]), thread_loop)
    else:
        wb = sch.cache_write(blk, 0, "local")
        sch.reverse_compute_at(wb, thread_loop)

    if stage and red_outer:
        at = red_outer[-1]
        vector = _knob(knobs, "vector", 1)
        pad = _knob(knobs, "pad_smem", 0) == 1
        reads = [r.source.name for r in sch.get(blk).reads]
        for name in producers:
            pb = sch.get_sblock(name)
            sch.set_scope(pb, 0, "shared")
            sch.compute_at(pb, at)
            if pad:
                _pad_rows(sch, pb)
            _cooperative_fetch(sch, pb, at, threads, 1)  # computed (padding): scalar
        for idx, name in enumerate(reads):
            if name in producers or name == sch.get(blk).writes[0].source.name:
                continue
            cache = sch.cache_read(blk, idx, "shared")
            sch.compute_at(cache, at)
            if pad:
                _pad_rows(sch, cache)
            _cooperative_fetch(sch, cache, at, threads, 1 if pad else vector)

    if red_outer or red_inner:
        sch.decompose_reduction(blk, (red_outer or red_inner)[0])
    unroll = _knob(knobs, "unroll", 0)
    if unroll:
        sch.annotate(bx, "pragma_auto_unroll_max_step", unroll)
        sch.annotate(bx, "pragma_unroll_explicit", 1)


def _fuse_bind(sch, loops: list, tag: str):
    if not loops:
        return None
    loop = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    sch.bind(loop, tag)
    return loop


def _pad_rows(sch, block) -> None:
    buf = sch.get(block).writes[0].source
    if len(buf.shape) >= 2:
        # an odd row pitch (one element longer when even): threads reading down a column hit different banks
        sch.storage_align(block, 0, len(buf.shape) - 2, 2, 1)


def _cooperative_fetch(sch, block, at, threads: int, vector: int) -> None:
    """All `threads` threads of the block copy the tile: copy loops fused, split [rest, threads, vector]."""
    loops = sch.get_loops(block)
    depth = _depth(sch, loops, at)
    own = loops[depth:]
    if not own:
        return
    if vector > 1 and not _aligned(sch, block, own, vector):
        vector = 1
    fused = sch.fuse(*own) if len(own) > 1 else own[0]
    if vector > 1:
        _, t, v = sch.split(fused, factors=[None, threads, vector])
        sch.vectorize(v)
    else:
        _, t = sch.split(fused, factors=[None, threads])
    sch.bind(t, "threadIdx.x")


def _depth(sch, loops, at) -> int:
    target = sch.get(at)
    for i, loop in enumerate(loops):
        if sch.get(loop).same_as(target):
            return i + 1
    raise ValueError("the staging loop does not enclose the copy block")


def _aligned(sch, block, own, vector: int) -> bool:
    """True when widening the copy by `vector` lanes reads and writes whole aligned vectors only.

    The innermost copy loop must cover a multiple of `vector` elements, the global buffer's rows must be a
    multiple of `vector` long, and the flattened global index at the start of a row (innermost loop var = 0)
    must be a multiple of `vector` for every value of the outer loops (TVM's modular-set analysis proves it).
    """
    from tvm import tirx

    inner = sch.get(own[-1])
    if not isinstance(inner.extent, tirx.IntImm) or inner.extent.value % vector:
        return False
    realize = inner.body
    if not hasattr(realize, "iter_values"):
        return False
    sblock = realize.block
    body = sblock.body
    if type(body).__name__ != "BufferStore" or not is_load(body.value):
        return False  # not a plain copy (e.g. padding): leave it scalar
    load = body.value
    shape = [int(d) for d in load_buffer(load).shape]
    if shape[-1] % vector:
        return False
    ana = _analyzer(sblock, realize, {inner.loop_var: 0})
    m = ana.modular_set(ana.simplify(_flat(load.indices, shape)))
    return m.coeff % vector == 0 and m.base % vector == 0


def _analyzer(sblock, realize, fixed: Mapping | None = None):
    """An analyzer that rewrites the block's iteration variables into loop variables (some fixed)."""
    from tvm import tirx
    from tvm.sym.analyzer import Analyzer

    ana = Analyzer()
    for var, value in (fixed or {}).items():
        ana.bind(var, tirx.const(value, str(var.ty.dtype)))
    for iv, value in zip(sblock.iter_vars, realize.iter_values):
        ana.bind(iv.var, ana.simplify(value))
    return ana


def _flat(indices, shape):
    flat = 0
    for idx, dim in zip(indices, shape):
        flat = flat * dim + idx
    return flat


def row_reduce(sch, st: KernelStructure, knobs: Knobs) -> None:
    threads = _knob(knobs, "threads", 256)
    rows_per_block = _knob(knobs, "rows_per_block", 1)
    out_name = st.consumers[-1] if st.consumers else st.anchor
    names = [*st.producers, st.anchor, *st.consumers]
    if _knob(knobs, "inline_producers", 1):
        for name in names:
            if name in (out_name, st.anchor) or name in st.reducing_producers:
                continue
            try:
                sch.compute_inline(sch.get_sblock(name))
                names.remove(name)
            except not_applicable():  # not inlinable (read at another index): it stays a staged statement
                pass
    out = sch.get_sblock(out_name)
    loops = sch.get_loops(out)
    row_pos = _row_positions(sch, st, out_name)
    rows = [loops[i] for i in row_pos]
    elems = [loop for i, loop in enumerate(loops) if i not in row_pos]
    sch.reorder(*rows, *elems)
    row = sch.fuse(*rows) if len(rows) > 1 else rows[0]
    if threads == 1:
        bx, ty = sch.split(row, factors=[None, rows_per_block])
        sch.bind(bx, "blockIdx.x")
        sch.bind(ty, "threadIdx.x")
        at = ty
    else:
        bx, ty = sch.split(row, factors=[None, rows_per_block])
        sch.bind(bx, "blockIdx.x")
        sch.bind(ty, "threadIdx.y")
        at = ty
        if elems:
            e = sch.fuse(*elems) if len(elems) > 1 else elems[0]
            _, tx = sch.split(e, factors=[None, threads])
            sch.bind(tx, "threadIdx.x")
    for name in reversed(names):
        if name == out_name:
            continue
        blk = sch.get_sblock(name)
        # per-row intermediates are shared by the threads of the row
        sch.set_scope(blk, 0, "shared" if threads > 1 else "local")
        sch.compute_at(blk, at)
        if threads > 1:
            own = sch.get_loops(blk)[_depth(sch, sch.get_loops(blk), at) :]
            if own:
                f = sch.fuse(*own) if len(own) > 1 else own[0]
                _, tx = sch.split(f, factors=[None, threads])
                sch.bind(tx, "threadIdx.x")
    unroll = _knob(knobs, "unroll", 0)
    if unroll:
        sch.annotate(bx, "pragma_auto_unroll_max_step", unroll)
        sch.annotate(bx, "pragma_unroll_explicit", 1)


def _row_positions(sch, st: KernelStructure, out_name: str) -> list[int]:
    """Positions of the output's loops that select a row: those its read of the reduction result is indexed
    by.

    The anchor's spatial axes are the rows; the output reads anchor[..] at some of its own axes (softmax's
    Y[o, d, i] reads Sm[o, i]: rows o and i, elements d).
    """
    if out_name == st.anchor:
        return list(range(len(st.spatial)))
    out = sch.get(sch.get_sblock(out_name))
    anchor_buf = sch.get(sch.get_sblock(st.anchor)).writes[0].source
    itervars = [iv.var for iv in out.iter_vars]
    found: list[int] = []
    for node in nodes(out.body):
        if is_load(node) and load_buffer(node).same_as(anchor_buf):
            for idx in node.indices:
                for i, v in enumerate(itervars):
                    if idx.same_as(v) and i not in found:
                        found.append(i)
    # unit loops of the output (extent 1) are rows too: they select nothing
    for i, iv in enumerate(out.iter_vars):
        if int(iv.dom.extent) == 1 and i not in found:
            found.append(i)
    return sorted(found)


def injective(sch, st: KernelStructure, knobs: Knobs) -> None:
    blocks = [*st.producers, st.anchor, *st.consumers]
    out = sch.get_sblock(blocks[-1])
    for name in reversed(blocks[:-1]):
        sch.compute_inline(sch.get_sblock(name))
    loops = sch.get_loops(out)
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    threads = _knob(knobs, "threads", 256)
    vector = _knob(knobs, "vector", 1)
    total = math.prod(a.extent for a in st.spatial)
    if vector > 1 and total % vector == 0:
        bx, tx, v = sch.split(fused, factors=[None, threads, vector])
        if _aligned_all(sch, out, v, vector):
            sch.vectorize(v)
    else:
        bx, tx = sch.split(fused, factors=[None, threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    unroll = _knob(knobs, "unroll", 0)
    if unroll:
        sch.annotate(bx, "pragma_auto_unroll_max_step", unroll)
        sch.annotate(bx, "pragma_unroll_explicit", 1)


def _aligned_all(sch, block, lane_loop, vector: int) -> bool:
    """Every global access of `block` is either the same element for all lanes or an aligned contiguous
    vector.
    """
    loop = sch.get(lane_loop)
    realize = loop.body
    if not hasattr(realize, "iter_values"):
        return False
    sblock = realize.block
    lane = loop.loop_var
    at0 = _analyzer(sblock, realize, {lane: 0})
    at1 = _analyzer(sblock, realize, {lane: 1})
    for node in nodes(sblock.body):
        if is_load(node) or type(node).__name__ == "BufferStore":
            buf = load_buffer(node) if is_load(node) else node.buffer
            flat = _flat(node.indices, [int(d) for d in buf.shape])
            first, second = at0.simplify(flat), at1.simplify(flat)
            step = at0.simplify(second - first)
            if not hasattr(step, "value"):
                return False
            if step.value == 0:
                continue  # the same element for every lane: a broadcast
            m = at0.modular_set(first)
            if step.value != 1 or m.coeff % vector or m.base % vector:
                return False
        elif type(node).__name__ == "Call" and getattr(node.op, "name", "") == "tirx.if_then_else":
            return False  # a lane-dependent condition is scalarized anyway
    return True
