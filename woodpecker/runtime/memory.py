"""Static memory planning: every run-time value gets an offset in one arena, reused once the value is dead.

Values that are views (reshapes) share their source's storage. Lifetimes are inclusive step ranges, so a kernel
never writes its output over one of its own inputs. Placement is greedy by size: the largest tensors are placed
first, each at the lowest offset that does not overlap a placed tensor alive at the same time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

ALIGN = 64  # bytes; TVM requires 64-byte aligned tensors for the vector loads it emits


@dataclasses.dataclass(frozen=True)
class Placement:
    offset: int  # bytes into the arena
    nbytes: int


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int
    placements: Mapping[str, Placement]  # storage root value -> placement
    root: Mapping[str, str]  # value -> storage root value (itself unless it is a view or a slice)
    offsets: Mapping[str, int] = dataclasses.field(default_factory=dict)  # value -> bytes into its root (slices)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _root_lifetimes(nbytes, defs, last_uses, views, slices=()):
    root: dict[str, str] = {v: v for v in nbytes}
    offsets: dict[str, int] = {}
    for part, whole, offset in slices:
        root[part] = root.get(whole, whole)
        offsets[part] = offsets.get(whole, 0) + offset
    for src, dst in views:
        root[dst] = root.get(src, src)
        if src in offsets:
            offsets[dst] = offsets[src]
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    size: dict[str, int] = {}
    for v, n in nbytes.items():
        r = root[v]
        start[r] = min(start.get(r, defs[v]), defs[v])
        end[r] = max(end.get(r, last_uses[v]), last_uses[v])
        size[r] = max(size.get(r, 0), _align(max(n, 1) + offsets.get(v, 0)))
    return root, start, end, size, offsets


def plan_memory(
    nbytes: Mapping[str, int],
    defs: Mapping[str, int],
    last_uses: Mapping[str, int],
    views: Sequence[tuple[str, str]],
    slices: Sequence[tuple[str, str, int]] = (),
) -> MemoryPlan:
    """nbytes/defs/last_uses: per value; views: (src, dst) pairs, dst sharing src's storage; slices: (part, whole,
    byte offset), part stored inside whole's storage at that offset."""
    root, start, end, size, offsets = _root_lifetimes(nbytes, defs, last_uses, views, slices)
    placed: list[tuple[str, int]] = []
    placements: dict[str, Placement] = {}
    for r in sorted(size, key=lambda k: (-size[k], start[k], k)):
        conflicts = sorted(
            (off, off + size[o]) for o, off in placed if not (end[o] < start[r] or end[r] < start[o])
        )
        offset = 0
        for lo, hi in conflicts:
            if offset + size[r] <= lo:
                break
            offset = max(offset, hi)
        placed.append((r, offset))
        placements[r] = Placement(offset, size[r])
    arena = max((p.offset + p.nbytes for p in placements.values()), default=0)
    return MemoryPlan(arena, placements, root, offsets)


@dataclasses.dataclass(frozen=True)
class BufferPlan:
    buffer_bytes: tuple[int, ...]  # size of each buffer
    buffer_of: Mapping[str, int]  # storage root value -> its buffer
    root: Mapping[str, str]  # value -> storage root value (itself unless it is a view)

    @property
    def total_bytes(self) -> int:
        return sum(self.buffer_bytes)


def plan_buffers(
    nbytes: Mapping[str, int],
    defs: Mapping[str, int],
    last_uses: Mapping[str, int],
    views: Sequence[tuple[str, str]],
    slices: Sequence[tuple[str, str, int]] = (),
) -> BufferPlan:
    """Like plan_memory, but every storage root sits at offset 0 of a buffer of its own kind: for runtimes whose
    kernels reject an argument at a non-zero byte offset (TVM's device kernels). Roots in order of definition
    take the smallest dead buffer that holds them, else grow the largest dead one, else a new buffer."""
    if slices:  # a device kernel takes no byte offset into a buffer (the GPU target keeps concat copies)
        raise ValueError("buffers per value cannot hold a value inside another (in-place concat)")
    root, start, end, size, _ = _root_lifetimes(nbytes, defs, last_uses, views)
    buffers: list[list[int]] = []  # [bytes, last step of its current occupant]
    buffer_of: dict[str, int] = {}
    for r in sorted(size, key=lambda k: (start[k], -size[k], k)):
        dead = [i for i, (_, busy) in enumerate(buffers) if busy < start[r]]
        fitting = [i for i in dead if buffers[i][0] >= size[r]]
        if fitting:
            i = min(fitting, key=lambda j: (buffers[j][0], j))
        elif dead:
            i = max(dead, key=lambda j: (buffers[j][0], -j))
            buffers[i][0] = size[r]
        else:
            buffers.append([size[r], end[r]])
            i = len(buffers) - 1
        buffers[i][1] = end[r]
        buffer_of[r] = i
    return BufferPlan(tuple(b[0] for b in buffers), buffer_of, root)
