"""Host buffers of the executor (woodpecker.runtime.host_memory): alignment, the huge-page advice the kernel is
given, constants packed into one block, and an executor that runs the same either way."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest

import woodpecker
from woodpecker import config
from woodpecker.runtime.executor import Executor
from woodpecker.runtime.host_memory import HUGE_PAGE, host_buffer, pack
from woodpecker.runtime.memory import ALIGN

from woodpecker.testing.models import tiny_cnn

linux_madvise = pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_HUGEPAGE"),
                                   reason="madvise advice is Linux's")


def _vm_flags(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds `address` (/proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@linux_madvise
@pytest.mark.parametrize("nbytes", [1, 4096, HUGE_PAGE - 64, HUGE_PAGE + 1, 5 * HUGE_PAGE])
def test_a_huge_buffer_is_aligned_to_a_huge_page_and_advised(nbytes):
    buf = host_buffer(nbytes, huge=True)
    assert buf.nbytes == nbytes and buf.dtype == np.uint8 and not buf.any()
    assert buf.ctypes.data % HUGE_PAGE == 0
    assert "hg" in _vm_flags(buf.ctypes.data) and "nh" not in _vm_flags(buf.ctypes.data)
    buf[-1] = 7  # the whole length is writable
    assert buf[-1] == 7


@linux_madvise
def test_an_ordinary_buffer_is_advised_against_huge_pages():
    # numpy's allocator advises huge pages for any large array by itself, so the baseline has to say no
    buf = host_buffer(8 * HUGE_PAGE, huge=False)
    assert buf.ctypes.data % ALIGN == 0 and buf.nbytes == 8 * HUGE_PAGE
    assert "nh" in _vm_flags(buf.ctypes.data) and "hg" not in _vm_flags(buf.ctypes.data)


@pytest.mark.parametrize("huge", [True, False])
def test_packed_arrays_keep_their_values_in_one_aligned_block(huge):
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((3, 5, 7)).astype(np.float32), "scalar": np.array(2.5, np.float32),
              "empty": np.zeros((0, 4), np.float32), "idx": np.arange(13, dtype=np.int64),
              "odd": rng.standard_normal(3).astype(np.float64), "b": np.array([True, False, True])}
    packed = pack(arrays, huge)
    assert list(packed) == list(arrays)
    starts = []
    for name, value in arrays.items():
        got = packed[name]
        assert got.shape == value.shape and got.dtype == value.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, value)
        assert got.ctypes.data % ALIGN == 0
        starts.append((got.ctypes.data, got.nbytes))
    nonempty = sorted(s for s in starts if s[1])
    assert all(a + n <= b for (a, n), (b, _) in zip(nonempty, nonempty[1:]))  # no two overlap
    assert nonempty[-1][0] + nonempty[-1][1] - nonempty[0][0] < 64 * ALIGN  # one block, not one mapping each
    packed["w"][0, 0, 0] = 99.0
    assert arrays["w"][0, 0, 0] != 99.0  # copies: the caller's arrays are untouched


def test_the_executor_runs_the_same_with_and_without_huge_pages():
    cm = woodpecker.compile(tiny_cnn(), vendor=False)
    feeds = cm.random_inputs(3)
    outs = [Executor(cm.library, cm.program, cm.constants, huge_pages=huge).run(feeds) for huge in (True, False)]
    with config.override(huge_pages=False):
        outs.append(Executor(cm.library, cm.program, cm.constants).run(feeds))
    want = cm.run(feeds)
    for out in outs:
        assert list(out) == list(want)
        for k in want:
            np.testing.assert_array_equal(out[k], want[k])


def test_huge_pages_are_the_default_and_the_environment_turns_them_off(monkeypatch):
    monkeypatch.delenv("WOODPECKER_HUGE_PAGES", raising=False)
    assert config._from_env().huge_pages
    monkeypatch.setenv("WOODPECKER_HUGE_PAGES", "0")
    assert not config._from_env().huge_pages
