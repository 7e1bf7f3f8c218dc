"""Lowered device TIR (one kernel) -> KernelFeatures: what the analytical model needs to know about a launch.

The walk visits every statement once, carrying the enclosing loops, `let` bindings and `if` guards. For every
memory access it records how often one thread executes it and, from the numerically evaluated addresses of the
threads of block 0 (enclosing loops at their first iteration), how the access maps onto the memory system:

* global: 32-byte sectors and 128-byte lines per warp request (coalescing), sectors unique to the block (warps
  of a block sharing data hit L1), sectors new at the next iteration of the innermost loop the address moves
  with (spatial reuse in L1), and the bytes a block covers;
* shared: wavefronts per warp request from the banks the lanes hit (bank conflicts; lanes reading the same
  word are a broadcast), at least one per 128 bytes moved.

Approximations (documented because they bias the model): a load is hoisted out of every loop its address does
not move with unless that loop also stores to the buffer (nvcc's LICM keeps it in a register); local buffers
are registers; `if` guards are evaluated for block 0 at the first iteration only; an index that reads memory
(a gather) evaluates that read as 0; every thread of a block follows block 0's pattern and every block follows
block 0. Floating-point work is counted once per distinct subexpression of a statement (nvcc's CSE), with a
multiply feeding an add counted as one fused multiply-add instruction (two FLOPs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from woodpecker.schedule.tirwalk import is_load, load_buffer, nodes

SECTOR_BYTES = 32
LINE_BYTES = 128
BANKS = 32
BANK_BYTES = 4
WARP = 32
_SAMPLE_BLOCKS = 16
_SFU_CALLS = (
    "tirx.exp",
    "tirx.exp2",
    "tirx.exp10",
    "tirx.log",
    "tirx.log2",
    "tirx.sqrt",
    "tirx.rsqrt",
    "tirx.tanh",
    "tirx.erf",
    "tirx.pow",
    "tirx.sigmoid",
    "tirx.sin",
    "tirx.cos",
)  # blocks whose first-iteration addresses estimate how much a wave of blocks shares


@dataclasses.dataclass(frozen=True)
class KernelFeatures:
    """One kernel launch. Per-thread counts are dynamic instruction counts of one thread (= one warp's count
    of warp instructions); per-block quantities are those of block 0, which every block is assumed to match.
    """

    name: str
    grid_blocks: int  # blocks launched
    threads_per_block: int
    smem_bytes_per_block: int  # static shared memory
    local_elements_per_thread: int  # registers held by local arrays (accumulator tiles)
    flops_per_thread: float  # floating-point operations (an FMA is 2)
    fp_instr_per_thread: float  # floating-point instructions (an FMA is 1)
    sfu_instr_per_thread: float  # transcendental / division instructions (special function units)
    int_instr_per_thread: float  # address arithmetic and loop overhead left after nvcc's strength reduction
    global_load_instr_per_thread: float
    global_store_instr_per_thread: float
    shared_load_instr_per_thread: float
    shared_store_instr_per_thread: float
    other_instr_per_thread: float  # barriers, shuffles, selects
    global_sectors_per_request: (
        float  # 32-byte sectors per warp global access (4 = fully coalesced 4-byte loads)
    )
    l1_wavefronts_per_block: float  # global: 128-byte line lookups of all warp requests of a block
    l2_sectors_per_block: float  # global sectors a block moves between L1 and L2 (after L1 reuse)
    l2_sectors_no_reuse_per_block: float  # the same when L1 keeps nothing between iterations
    l1_working_set_bytes_per_block: float  # L1 lines one iteration of a block's loads touches (for the reuse)
    shared_wavefronts_per_block: float  # shared-memory wavefronts of all warp requests of a block
    shared_requests_per_block: float  # shared-memory warp requests of a block
    bank_conflict_degree: float  # shared wavefronts per request (1 = conflict free)
    footprint_bytes: int  # distinct global bytes of the whole kernel (every buffer it touches, once)
    unique_bytes_per_block: float  # global bytes one block touches
    wave_sharing: float  # unique / total sectors over a sample of concurrent blocks (1 = nothing shared)
    ilp: float  # independent accumulation chains per thread in the hottest loop
    mlp: float  # independent global loads per thread in flight (loads of one loop body)
    bytes_per_request: float  # average bytes moved per global warp request

    @property
    def warps_per_block(self) -> int:
        return math.ceil(self.threads_per_block / WARP)

    @property
    def instr_per_thread(self) -> float:
        return (
            self.fp_instr_per_thread
            + self.sfu_instr_per_thread
            + self.int_instr_per_thread
            + self.global_load_instr_per_thread
            + self.global_store_instr_per_thread
            + self.shared_load_instr_per_thread
            + self.shared_store_instr_per_thread
            + self.other_instr_per_thread
        )

    @property
    def flops(self) -> float:
        return self.flops_per_thread * self.threads_per_block * self.grid_blocks

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> KernelFeatures:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def extract_module(device_mod) -> tuple[KernelFeatures, ...]:
    """Features of every kernel of a lowered device module (see lower.lower_device), in launch order."""
    return tuple(extract(func, gv.name_hint) for gv, func in device_mod.functions.items())


# ------------------------------------------------------------------------------------------------------------
# expression evaluation over the threads of a block


class _Unknown(Exception):
    pass


def _h(obj) -> int:
    return obj.__chandle__()


_BIN = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Min": np.minimum,
    "Max": np.maximum,
    "FloorDiv": lambda a, b: np.floor_divide(a, np.where(b == 0, 1, b)),
    "FloorMod": lambda a, b: np.mod(a, np.where(b == 0, 1, b)),
    "Div": lambda a, b: (
        np.trunc(np.divide(a, np.where(b == 0, 1, b))).astype(np.int64)
        if np.asarray(a).dtype.kind in "iu"
        else np.divide(a, b)
    ),
    "Mod": lambda a, b: np.fmod(a, np.where(b == 0, 1, b)),
    "RShift": np.right_shift,
    "LShift": np.left_shift,
    "BitwiseAnd": np.bitwise_and,
    "BitwiseOr": np.bitwise_or,
    "BitwiseXor": np.bitwise_xor,
    "LT": np.less,
    "LE": np.less_equal,
    "GT": np.greater,
    "GE": np.greater_equal,
    "EQ": np.equal,
    "NE": np.not_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
}


class _Evaluator:
    """Evaluates integer index and condition expressions with numpy, one value per thread of the block."""

    def __init__(
        self, env: Mapping[int, np.ndarray | int], binds: Mapping[int, object], threads: int
    ) -> None:
        self.threads = threads
        self.env = env
        self.binds = binds
        self.memo: dict[int, np.ndarray] = {}

    def __call__(self, e):
        key = _h(e)
        if key in self.memo:
            return self.memo[key]
        v = self._eval(e)
        self.memo[key] = v
        return v

    def _eval(self, e):
        t = type(e).__name__
        if t == "IntImm":
            return np.int64(e.value)
        if t == "FloatImm":
            return np.float64(e.value)
        if t == "Var":
            key = _h(e)
            if key in self.env:
                return self.env[key]
            if key in self.binds:
                return self(self.binds[key])
            raise _Unknown(e.name)
        if t in _BIN:
            a, b = self(e.a), self(e.b)
            if t in ("RShift", "LShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor"):
                a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
            return _BIN[t](a, b)
        if t == "Not":
            return np.logical_not(self(e.a))
        if t == "Cast":
            v = self(e.value)
            return np.asarray(v).astype(np.float64 if _is_float(e) else np.int64)
        if t == "Select":
            return np.where(self(e.condition), self(e.true_value), self(e.false_value))
        if t == "Ramp":
            base = np.broadcast_to(np.asarray(self(e.base), np.int64), (self.threads,))
            stride = np.asarray(self(e.stride), np.int64)
            return base[:, None] + stride * np.arange(int(e.lanes))
        if t == "Broadcast":
            return self(e.value)
        if t == "Let":
            raise _Unknown("let")
        if is_load(e):
            return np.int64(0)  # a data-dependent index (gather): evaluated as 0
        if t == "Call":
            name = getattr(e.op, "name", "")
            if name == "tirx.if_then_else":
                return np.where(self(e.args[0]), self(e.args[1]), self(e.args[2]))
            if name in ("tirx.likely", "tirx.assume"):
                return self(e.args[0])
        raise _Unknown(t)


def _vars(e, binds: Mapping[int, object], seen: set[int] | None = None) -> set[int]:
    """Handles of the loop and thread variables `e` depends on, through let bindings."""
    out: set[int] = set()
    seen = set() if seen is None else seen
    for n in nodes(e):
        if type(n).__name__ == "Var":
            key = _h(n)
            if key in binds:
                if key not in seen:
                    seen.add(key)
                    out |= _vars(binds[key], binds, seen)
            else:
                out.add(key)
    return out


# ------------------------------------------------------------------------------------------------------------
# the walk


@dataclasses.dataclass
class _Loop:
    var: int
    extent: int
    unrolled: bool
    stores: frozenset[str]  # buffers stored to anywhere in its body


@dataclasses.dataclass
class _Site:
    scope: str  # global | shared
    store: bool
    buffer: str
    executions: float  # per thread
    warps_active: float  # fraction of the block's warps that execute it
    bytes_per_lane: int
    sectors_per_warp: float = 0.0
    lines_per_warp: float = 0.0
    wavefronts_per_warp: float = 0.0
    block_sectors: float = 0.0  # sectors of the whole block per execution (after L1 sharing and reuse)
    block_sectors_no_reuse: float = 0.0  # ... without reuse across iterations
    block_lines: float = 0.0  # 128-byte lines of the whole block at one iteration
    covered_bytes: float = 0.0  # bytes of the buffer one block touches over the whole kernel
    sample_sectors: int = 0  # sectors of a sample of blocks at their first iteration, summed over blocks
    sample_unique: int = 0  # ... and counted once


class _Walker:
    def __init__(self) -> None:
        self.buffers: dict[str, tuple[str, int, int]] = {}  # name -> (scope, bytes per element, elements)
        self.thread_ext = {
            "blockIdx.x": 1,
            "blockIdx.y": 1,
            "blockIdx.z": 1,
            "threadIdx.x": 1,
            "threadIdx.y": 1,
            "threadIdx.z": 1,
        }
        self.thread_vars: dict[str, int] = {}
        self.sites: list[_Site] = []
        self.flops = 0.0
        self.fp_instr = 0.0
        self.sfu = 0.0
        self.int_instr = 0.0
        self.other = 0.0
        self.local_elems = 0
        self.smem = 0
        self.loads_per_body: list[int] = []  # global load sites of each loop body (loads issued together)
        self._pending: list = []
        # innermost loop -> distinct local elements stored in its body (independent accumulation chains)
        self._local_stores: dict[int, set] = {}
        # loads already in a register in the current straight-line code (nvcc reuses them until the buffer is
        # written or, for shared memory, until a barrier)
        self.avail: set = set()

    # -- thread environment ---------------------------------------------------------------------------------
    def thread_env(self, block: int) -> dict[int, np.ndarray | int]:
        x, y, z = (self.thread_ext[f"threadIdx.{a}"] for a in "xyz")
        lin = np.arange(x * y * z, dtype=np.int64)
        env: dict[int, np.ndarray | int] = {}
        values = {"threadIdx.x": lin % x, "threadIdx.y": (lin // x) % y, "threadIdx.z": lin // (x * y)}
        gx, gy = self.thread_ext["blockIdx.x"], self.thread_ext["blockIdx.y"]
        values.update(
            {
                "blockIdx.x": np.int64(block % gx),
                "blockIdx.y": np.int64((block // gx) % gy),
                "blockIdx.z": np.int64(block // (gx * gy)),
            }
        )
        for tag, key in self.thread_vars.items():
            env[key] = values[tag]
        return env

    @property
    def threads(self) -> int:
        return (
            self.thread_ext["threadIdx.x"] * self.thread_ext["threadIdx.y"] * self.thread_ext["threadIdx.z"]
        )

    @property
    def blocks(self) -> int:
        return self.thread_ext["blockIdx.x"] * self.thread_ext["blockIdx.y"] * self.thread_ext["blockIdx.z"]

    # -- statements -----------------------------------------------------------------------------------------
    def visit(self, stmt, loops: list[_Loop], binds: dict[int, object], guards: list) -> None:
        t = type(stmt).__name__
        if t == "SeqStmt":
            scope = dict(binds)  # lets bind for the rest of this sequence
            for s in stmt.seq:
                self.visit(s, loops, scope, guards)
        elif t in ("Bind", "LetStmt"):
            binds[_h(stmt.var)] = stmt.value
        elif t in ("DeclBuffer", "AllocBuffer"):
            buf = stmt.buffer
            scope = buf.scope()
            elems = (
                math.prod(int(d) for d in buf.shape)
                if all(hasattr(d, "value") or isinstance(d, int) for d in buf.shape)
                else 0
            )
            nbytes = max(1, buf.dtype.bits * buf.dtype.lanes // 8) if hasattr(buf.dtype, "bits") else 4
            self.buffers[buf.name] = (scope, nbytes, elems)
            if t == "AllocBuffer" and scope.startswith("shared"):
                self.smem += elems * nbytes
            if t == "AllocBuffer" and scope == "local":
                self.local_elems += elems
        elif t == "AttrStmt":
            if stmt.attr_key == "thread_extent":
                iv = stmt.node
                self.thread_ext[iv.thread_tag] = int(stmt.value)
                self.thread_vars[iv.thread_tag] = _h(iv.var)
            self.visit(stmt.body, loops, binds, guards)
        elif t == "For":
            extent = int(stmt.extent) if hasattr(stmt.extent, "value") else 1
            stores = frozenset(n.buffer.name for n in nodes(stmt.body) if type(n).__name__ == "BufferStore")
            unrolled = int(stmt.kind) == 3  # ForKind.UNROLLED
            loop = _Loop(_h(stmt.loop_var), extent, unrolled, stores)
            if not unrolled:
                self.int_instr += 2 * self._count(loops) * extent  # increment, compare-and-branch
            before = len(self.sites)
            self.avail = set()
            self.visit(stmt.body, loops + [loop], binds, guards)
            self.avail = set()
            self._body_stats(before)
        elif t == "IfThenElse":
            self.other += self._count(loops)
            saved = set(self.avail)
            self.visit(stmt.then_case, loops, binds, guards + [stmt.condition])
            if stmt.else_case is not None:
                self.avail = set(saved)
                self.visit(stmt.else_case, loops, binds, guards + [("not", stmt.condition)])
            self.avail = set()
        elif t == "BufferStore":
            self.store(stmt, loops, binds, guards)
        elif t == "Evaluate":
            self.evaluate(stmt.value, loops, binds, guards)
        elif t == "While":
            self.visit(stmt.body, loops, binds, guards)
        # AssertStmt and anything else: no device work

    def _count(self, loops: list[_Loop]) -> float:
        return float(math.prod(lp.extent for lp in loops))

    def _body_stats(self, first_site: int) -> None:
        loads = sum(1 for s in self.sites[first_site:] if s.scope == "global" and not s.store)
        self.loads_per_body.append(loads)

    def evaluate(self, value, loops, binds, guards) -> None:
        if type(value).__name__ == "Call":
            name = getattr(value.op, "name", "")
            if name in ("tirx.tvm_storage_sync",) or "shfl" in name or "activemask" in name:
                self.other += self._count(loops)
                if name == "tirx.tvm_storage_sync":
                    self.avail = {k for k in self.avail if self.buffers.get(k[1], ("global",))[0] == "global"}
                return
            for a in value.args:
                self.expression(a, loops, binds, guards)
                # calls into the CUDA runtime used as statements (shuffles written through call_extern)
            self.other += self._count(loops)

    def store(self, stmt, loops, binds, guards) -> None:
        buf = stmt.buffer
        scope = self.buffers.get(buf.name, (buf.scope(), 4, 0))[0]
        self.expression(stmt.value, loops, binds, guards)
        self.avail = {k for k in self.avail if k[1] != buf.name}
        if scope in ("global",) or scope.startswith("shared"):
            lanes = _lanes(stmt.indices)
            self.access(buf.name, scope, True, stmt.indices, lanes, loops, binds, guards)
        if scope == "local":
            self._local_stores.setdefault(id(loops[-1]) if loops else 0, set()).add(
                (buf.name, str(stmt.indices[0]) if stmt.indices else "")
            )

    def expression(self, e, loops, binds, guards) -> None:
        """Counts the FP work of `e` (distinct subexpressions once) and records its memory reads."""
        count = self._count(loops)
        seen: set = set()
        keys: dict[int, tuple] = {}
        fma_muls = 0
        for n in nodes(e):
            t = type(n).__name__
            if is_load(n):
                buf = load_buffer(n)
                scope = self.buffers.get(buf.name, (buf.scope(), 4, 0))[0]
                key = _structural_key(n, keys)
                if key in self.avail:
                    continue  # the same element read before in this straight-line code: still in a register
                self.avail.add(key)
                if scope in ("global",) or scope.startswith("shared"):
                    self.access(buf.name, scope, False, n.indices, _lanes(n.indices), loops, binds, guards)
                continue
            if t in ("Add", "Sub", "Mul", "Div", "Min", "Max") and _is_float(n):
                key = _structural_key(n, keys)
                if key in seen:
                    continue
                seen.add(key)
                lanes = _dtype(n).lanes
                if t == "Div":
                    self.sfu += count * lanes
                    self.flops += count * lanes
                    continue
                self.fp_instr += count * lanes
                self.flops += count * lanes
                if t in ("Add", "Sub") and any(type(c).__name__ == "Mul" for c in (n.a, n.b)):
                    fma_muls += lanes
            elif t == "Call":
                key = _structural_key(n, keys)
                if key in seen:
                    continue
                seen.add(key)
                name = getattr(n.op, "name", "")
                if name in _SFU_CALLS:
                    self.sfu += count
                    self.flops += count
                elif name in ("tirx.call_pure_extern", "tirx.call_extern") and _is_float(n):
                    callee = str(n.args[0].value) if n.args and hasattr(n.args[0], "value") else ""
                    if any(f in callee for f in ("exp", "log", "sqrt", "tanh", "erf", "pow", "sin", "cos")):
                        self.sfu += count
                    else:
                        self.fp_instr += count  # floorf, fabsf, ...: one FP-pipe instruction
                    self.flops += count
        # a multiply feeding an add issues once as an FMA: one instruction, two FLOPs (already counted)
        self.fp_instr -= count * fma_muls

    def access(self, buffer: str, scope: str, store: bool, indices, lanes: int, loops, binds, guards) -> None:
        scope_kind = "global" if scope == "global" else "shared"
        shape_bytes = self.buffers.get(buffer, (scope, 4, 0))
        elem = shape_bytes[1]
        index = indices[0] if len(indices) == 1 else None
        if index is None:
            return  # lowered buffers are flat; anything else is not device memory traffic we can place
        deps = _vars(index, binds)
        # executions per thread: loads are hoisted out of loops they do not move with (unless the loop writes
        # the buffer); stores execute every iteration
        keep = len(loops)
        if not store:
            keep = 0
            for i in range(len(loops) - 1, -1, -1):
                if loops[i].var in deps or buffer in loops[i].stores:
                    keep = i + 1
                    break
        executions = float(math.prod(lp.extent for lp in loops[:keep]))
        dep_loops = [lp for lp in loops[:keep] if lp.var in deps]
        site = _Site(scope_kind, store, buffer, executions, 1.0, elem * lanes)
        self._pending.append(
            (
                site,
                index,
                [lp.var for lp in loops],
                [lp.extent for lp in dep_loops],
                dep_loops[-1].var if dep_loops else None,
                dict(binds),
                list(guards),
                elem,
            )
        )
        self.sites.append(site)
        if not loops or not any(lp.var in deps and not lp.unrolled for lp in loops):
            return
        self.int_instr += executions  # an address that moves with a rolled loop: one add per access

    # -- address analysis (after the walk: thread extents are known) ----------------------------------------
    def analyze_sites(self) -> None:
        threads = self.threads
        warps = math.ceil(threads / WARP)
        warp_ids = np.arange(threads) // WARP
        sample = sorted(
            {int(b) for b in np.linspace(0, max(0, self.blocks - 1), min(self.blocks, _SAMPLE_BLOCKS))}
        )
        envs = {b: self.thread_env(b) for b in sample}
        for site, index, loop_vars, dep_extents, inner_var, binds, guards, elem in self._pending:
            first_iter = {v: np.int64(0) for v in loop_vars}
            try:
                ev = _Evaluator({**envs[0], **first_iter}, binds, threads)
                byte0 = _addresses(ev, index, threads) * elem
                active = self._mask(guards, ev, threads)
            except _Unknown:
                # addresses we cannot evaluate: assume the worst (every lane its own sector and bank)
                site.sectors_per_warp = site.lines_per_warp = site.wavefronts_per_warp = float(WARP)
                site.block_sectors = site.block_sectors_no_reuse = float(WARP * warps)
                site.block_lines = float(WARP * warps)
                site.covered_bytes = site.block_sectors * SECTOR_BYTES * math.prod(dep_extents)
                continue
            act_warps = np.unique(warp_ids[active])
            site.warps_active = len(act_warps) / warps if warps else 0.0
            if site.scope == "shared":
                waves = [_wavefronts(byte0[(warp_ids == w) & active], elem) for w in act_warps]
                site.wavefronts_per_warp = float(np.mean(waves)) if waves else 0.0
                continue
            secs, lines = [], []
            for w in act_warps:
                b = byte0[(warp_ids == w) & active].ravel()
                secs.append(len(np.unique(b // SECTOR_BYTES)))
                lines.append(len(np.unique(b // LINE_BYTES)))
            site.sectors_per_warp = float(np.mean(secs)) if secs else 0.0
            site.lines_per_warp = float(np.mean(lines)) if lines else 0.0
            first = np.unique(byte0[active].ravel() // SECTOR_BYTES)
            n_inner = dep_extents[-1] if dep_extents else 1
            new = len(first)
            if inner_var is not None and n_inner > 1:
                try:
                    ev1 = _Evaluator({**envs[0], **first_iter, inner_var: np.int64(1)}, binds, threads)
                    second = np.unique(
                        (_addresses(ev1, index, threads) * elem)[active].ravel() // SECTOR_BYTES
                    )
                    new = len(np.setdiff1d(second, first, assume_unique=True))
                except _Unknown:
                    pass
            # per execution: the first iteration of the innermost moving loop brings the block's sectors, each
            # later iteration only the sectors it did not share with the previous one (L1 spatial reuse)
            site.block_sectors = (len(first) + (n_inner - 1) * new) / n_inner
            site.block_sectors_no_reuse = float(len(first))
            site.block_lines = float(len(np.unique(byte0[active].ravel() // LINE_BYTES)))
            site.covered_bytes = SECTOR_BYTES * (len(first) + (math.prod(dep_extents) - 1) * new)
            sets = [first]
            for blk in sample[1:]:
                try:
                    evb = _Evaluator({**envs[blk], **first_iter}, binds, threads)
                    sets.append(
                        np.unique((_addresses(evb, index, threads) * elem)[active].ravel() // SECTOR_BYTES)
                    )
                except _Unknown:
                    break
            site.sample_sectors = sum(len(x) for x in sets)
            site.sample_unique = len(np.unique(np.concatenate(sets)))

    def _mask(self, guards, ev, threads: int) -> np.ndarray:
        mask = np.ones(threads, bool)
        for g in guards:
            negate = isinstance(g, tuple)
            cond = g[1] if negate else g
            try:
                v = np.broadcast_to(np.asarray(ev(cond), bool), (threads,))
            except _Unknown:
                continue  # data-dependent guard: assume taken
            mask &= ~v if negate else v
        return mask


def _dtype(e):
    return e.ty.dtype


def _is_float(e) -> bool:
    return "float" in str(e.ty.dtype)


def _addresses(ev: _Evaluator, index, threads: int) -> np.ndarray:
    """Element addresses of an access, shape (threads, lanes)."""
    v = np.asarray(ev(index), np.int64)
    if v.ndim <= 1:
        return np.broadcast_to(v.reshape(-1, 1) if v.ndim == 1 else v, (threads, 1))
    return np.broadcast_to(v, (threads, v.shape[-1]))


def _lanes(indices) -> int:
    if len(indices) == 1 and type(indices[0]).__name__ == "Ramp":
        return int(indices[0].lanes)
    return 1


def _wavefronts(byte_addr: np.ndarray, elem_bytes: int) -> float:
    """Shared-memory wavefronts of one warp request: the most distinct words any bank must serve (lanes
    reading the same word are a broadcast), and at least one per 128 distinct bytes (16-byte lanes need 4
    anyway)."""
    words = np.unique(byte_addr.ravel() // BANK_BYTES)
    if words.size == 0:
        return 0.0
    per_bank = np.bincount(words % BANKS, minlength=BANKS)
    return float(max(per_bank.max(), math.ceil(words.size * BANK_BYTES / LINE_BYTES)))


def _structural_key(n, memo: dict[int, tuple]) -> tuple:
    """A hash-consed key of an expression: equal subexpressions get equal keys (what nvcc's CSE merges)."""
    h = _h(n)
    if h in memo:
        return memo[h]
    t = type(n).__name__
    if t in ("IntImm", "FloatImm"):
        key: tuple = (t, n.value)
    elif t == "Var":
        key = (t, h)
    elif is_load(n):
        key = ("load", load_buffer(n).name, tuple(_structural_key(i, memo) for i in n.indices))
    else:
        parts = []
        for f in (
            "a",
            "b",
            "value",
            "condition",
            "true_value",
            "false_value",
            "args",
            "base",
            "stride",
            "lanes",
        ):
            if hasattr(n, f):
                v = getattr(n, f)
                if type(v).__name__ in ("Array", "list", "tuple"):
                    parts.append(tuple(_structural_key(x, memo) for x in v))
                elif hasattr(v, "__chandle__") and type(v).__name__ not in ("DataType",):
                    try:
                        parts.append(_structural_key(v, memo))
                    except AttributeError:
                        parts.append(str(v))
                else:
                    parts.append(str(v))
        key = (t, getattr(getattr(n, "op", None), "name", None), tuple(parts))
    memo[h] = key
    return key


def extract(func, name: str = "kernel") -> KernelFeatures:
    """Features of one lowered device PrimFunc (see lower.lower_device)."""
    w = _Walker()
    w.visit(func.body, [], {}, [])
    w.analyze_sites()
    threads, blocks = w.threads, w.blocks
    warps = math.ceil(threads / WARP)
    gl = [s for s in w.sites if s.scope == "global"]
    sh = [s for s in w.sites if s.scope == "shared"]

    def instr(sites, store):
        return sum(s.executions * s.warps_active for s in sites if s.store == store)

    requests = sum(s.executions * s.warps_active for s in gl)
    sectors = sum(s.executions * s.warps_active * s.sectors_per_warp for s in gl)
    l1_wavefronts = sum(s.executions * s.warps_active * warps * s.lines_per_warp for s in gl)
    l2_sectors = sum(s.executions * s.block_sectors for s in gl)
    l2_no_reuse = sum(s.executions * s.block_sectors_no_reuse for s in gl)
    working_set = sum(s.block_lines * LINE_BYTES for s in gl if not s.store)
    sh_requests = sum(s.executions * s.warps_active * warps for s in sh)
    sh_wavefronts = sum(s.executions * s.warps_active * warps * s.wavefronts_per_warp for s in sh)
    footprint = sum(nbytes * elems for name, (scope, nbytes, elems) in w.buffers.items() if scope == "global")
    covered: dict[str, float] = {}
    for s in gl:
        covered[s.buffer] = covered.get(s.buffer, 0.0) + s.covered_bytes
    per_block = sum(
        min(v, w.buffers.get(k, ("", 4, 0))[1] * w.buffers.get(k, ("", 4, 0))[2] or v)
        for k, v in covered.items()
    )
    total_sample = sum(s.sample_sectors for s in gl)
    unique_sample = sum(s.sample_unique for s in gl)
    sharing = unique_sample / total_sample if total_sample else 1.0
    ilp = 1.0
    if w._local_stores:
        ilp = float(max(len(v) for v in w._local_stores.values()))
    # a loop body issues its loads back to back; without loops, every load of the kernel does
    loads = w.loads_per_body or [sum(1 for s in gl if not s.store)]
    mlp = float(max(1, *loads))
    return KernelFeatures(
        name=name,
        grid_blocks=blocks,
        threads_per_block=threads,
        smem_bytes_per_block=int(w.smem),
        local_elements_per_thread=int(w.local_elems),
        flops_per_thread=w.flops,
        fp_instr_per_thread=max(0.0, w.fp_instr),
        sfu_instr_per_thread=w.sfu,
        int_instr_per_thread=w.int_instr,
        global_load_instr_per_thread=instr(gl, False),
        global_store_instr_per_thread=instr(gl, True),
        shared_load_instr_per_thread=instr(sh, False),
        shared_store_instr_per_thread=instr(sh, True),
        other_instr_per_thread=w.other,
        global_sectors_per_request=sectors / requests if requests else 0.0,
        l1_wavefronts_per_block=l1_wavefronts,
        l2_sectors_per_block=l2_sectors,
        l2_sectors_no_reuse_per_block=l2_no_reuse,
        l1_working_set_bytes_per_block=working_set,
        shared_wavefronts_per_block=sh_wavefronts,
        shared_requests_per_block=sh_requests,
        bank_conflict_degree=sh_wavefronts / sh_requests if sh_requests else 1.0,
        footprint_bytes=int(footprint),
        unique_bytes_per_block=float(per_block),
        wave_sharing=float(sharing),
        ilp=ilp,
        mlp=mlp,
        bytes_per_request=sectors * SECTOR_BYTES / requests if requests else 0.0,
    )
