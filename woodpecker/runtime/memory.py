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
    root: Mapping[str, str]  # value -> storage root value (itself unless it is a view)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(
    nbytes: Mapping[str, int],
    defs: Mapping[str, int],
    last_uses: Mapping[str, int],
    views: Sequence[tuple[str, str]],
) -> MemoryPlan:
    """nbytes/defs/last_uses: per value; views: (src, dst) pairs, dst sharing src's storage."""
    root: dict[str, str] = {v: v for v in nbytes}
    for src, dst in views:
        root[dst] = root.get(src, src)
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    size: dict[str, int] = {}
    for v, n in nbytes.items():
        r = root[v]
        start[r] = min(start.get(r, defs[v]), defs[v])
        end[r] = max(end.get(r, last_uses[v]), last_uses[v])
        size[r] = max(size.get(r, 0), _align(max(n, 1)))
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
    return MemoryPlan(arena, placements, root)
