"""Runs of consecutive calls given to one onnxruntime session instead of one session per call.

Why: on this 2-core machine a vendor call in model order costs its work plus one wake-up of onnxruntime's
workers, one `run_with_iobinding` and the generated kernel's slower start after it (`benchmarks/switch_cost.py`:
100-450 us per call in model order against tens of us of work). A run of calls in one session pays that once, and
onnxruntime's graph optimizer sees the run whole (it fuses across what were separate regions).

A run is merged only where that changes nothing for the rest of the program: every value produced inside the run,
except its last output, is read only by later calls of the run (not by a call outside it, a view, or as a model
output). Where that does not hold the run is cut, so each group still writes one output, the last call's.
"""

from __future__ import annotations

from collections.abc import Sequence

from woodpecker.runtime.executor import Program
from woodpecker.runtime.region import Region

MERGEABLE = ("onnxruntime",)  # libraries that run a region set as one graph; torch and numpy run op by op


def merge_regions(members: Sequence[Region]) -> Region:
    """One region computing `members` in order: their nodes concatenated, the inputs read from outside the run,
    the last member's output. Its index and node are the first member's (where the merged call is placed)."""
    produced: set[str] = set()
    inputs: list[str] = []
    for r in members:
        for v in r.inputs:
            if v not in produced and v not in inputs:
                inputs.append(v)
        produced.add(r.output)
    types = {k: t for r in members for k, t in r.types.items()}
    consts = tuple(sorted({c for r in members for c in r.constant_names}))
    first = members[0]
    return Region(first.index, first.node, tuple(n for r in members for n in r.body), tuple(inputs),
                  members[-1].output, types, consts)


def continues_run(program: Program) -> list[bool]:
    """Per call, whether it can share a merged session with the call before it: that call's output is no model
    output, viewed value or in-place concat input (call_groups would cut the run there)."""
    escapes = _escapes(program)
    return [False] + [call.args[-1][0] not in escapes for call in program.calls[:-1]]


def _escapes(program: Program) -> set[str]:
    # a viewed value, or a concat input stored in its output, is read by whoever reads the view or the whole
    return set(program.output_values) | {src for src, _ in program.views} | {p for p, _, _ in program.slices}


def call_groups(program: Program, chosen: Sequence[str], merge: bool = True) -> list[tuple[int, ...]]:
    """The calls of the planned program, each as the tuple of original call indices it runs: a single call, or a
    run of consecutive calls of a MERGEABLE library whose inner values stay inside the run (see the module doc)."""
    n = len(program.calls)
    readers: dict[str, set[int]] = {}
    for i, call in enumerate(program.calls):
        for v, _ in call.args[:-1]:
            readers.setdefault(v, set()).add(i)
    escapes = _escapes(program)
    outputs = [call.args[-1][0] for call in program.calls]

    def closed(start: int, end: int) -> bool:
        # every output of calls start..end-1 is read only by calls up to `end`
        return all(outputs[k] not in escapes and max(readers.get(outputs[k], {k})) <= end
                   for k in range(start, end))

    groups: list[tuple[int, ...]] = []
    i = 0
    while i < n:
        lib = chosen[i]
        j = i
        while merge and lib in MERGEABLE and j + 1 < n and chosen[j + 1] == lib:
            j += 1
        # the longest closed group from i within the run i..j
        end = next((e for e in range(j, i, -1) if closed(i, e)), i)
        groups.append(tuple(range(i, end + 1)))
        i = end + 1
    return groups
