"""Host buffers for the executor: its arena and its constants, each one block, backed by transparent huge pages
where Linux allows it.

Why huge pages: a model streams its weights (ResNet-18: 47 MB, VGG-19: 548 MB, above this host's 32 MB L3) from
memory on every run, and on a VM every TLB miss is a two-level page walk. With 4 KiB pages the same build ran at
18.2-22.1 ms per process on ResNet-18 (8 fresh processes; the memory-bound kernels 1.5-3.6x slower in the slow
ones), with 2 MiB pages at 17.9-19.9 ms (benchmarks/huge_pages.py has the method and the figures). Packing the
constants into one block, rather than one allocation each, is what lets them share 2 MiB pages.

The kernel backs a madvise'd region with huge pages only where transparent huge pages are enabled ("always" or
"madvise" in /sys/kernel/mm/transparent_hugepage/enabled); elsewhere the same block is ordinary memory.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping

import numpy as np

from woodpecker.runtime.memory import ALIGN

HUGE_PAGE = 2 << 20  # bytes: an x86-64 / AArch64 (4 KiB granule) transparent huge page


def host_buffer(nbytes: int, huge: bool) -> np.ndarray:
    """A zeroed uint8 buffer of `nbytes` in an anonymous mapping of its own, 2 MiB-aligned and advised for huge pages
    with `huge`, advised against them without (numpy's allocator advises huge pages for any large array on its own,
    so ordinary pages have to be asked for). Where the platform has no madvise (not Linux): an ALIGN-aligned numpy
    buffer."""
    nbytes = max(int(nbytes), 1)
    advice = getattr(mmap, "MADV_HUGEPAGE" if huge else "MADV_NOHUGEPAGE", None)
    if advice is None:
        raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)
        shift = (-raw.ctypes.data) % ALIGN
        return raw[shift : shift + nbytes]
    # rounded up to whole huge pages, plus one for the alignment: the kernel only backs whole aligned 2 MiB ranges
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE
    mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    mapping.madvise(advice)
    raw = np.frombuffer(mapping, dtype=np.uint8)  # holds the mapping open as long as any view of it lives
    shift = (-raw.ctypes.data) % HUGE_PAGE
    return raw[shift : shift + nbytes]


def pack(arrays: Mapping[str, np.ndarray], huge: bool) -> dict[str, np.ndarray]:
    """Copies of `arrays` (same shapes and dtypes, C order) laid out one after another in one host_buffer, each at
    an ALIGN-aligned offset."""
    offsets: dict[str, int] = {}
    end = 0
    for name, value in arrays.items():
        offsets[name] = end
        end += -(-np.asarray(value).nbytes // ALIGN) * ALIGN
    block = host_buffer(end, huge)
    packed: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        value = np.asarray(value)
        start = offsets[name]
        view = block[start : start + value.nbytes].view(value.dtype).reshape(value.shape)
        np.copyto(view, value)
        packed[name] = view
    return packed
