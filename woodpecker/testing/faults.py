"""Misbehaving jobs for fault-isolation tests: each misbehaves the way a broken candidate kernel can."""

from __future__ import annotations

import ctypes
import os
import signal
import time


def ok(x: int) -> int:
    return x * 2


def raises(x: int) -> int:
    raise ValueError(f"bad candidate {x}")


def segfault(x: int) -> int:
    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a kernel indexing out of bounds can
    return x


def hang(x: int) -> int:
    time.sleep(3600)
    return x


def exits(x: int) -> int:
    os._exit(3)


def aborts(x: int) -> int:
    os.kill(os.getpid(), signal.SIGABRT)
    return x


def out_of_memory(x: int) -> int:
    import resource

    # cap this worker's address space, then ask for more than the cap: MemoryError, as a huge workspace would.
    # The cap is lifted again afterwards: a worker survives a MemoryError and goes on to measure other candidates,
    # which must not inherit a limit that a real candidate never sets.
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, hard))
    try:
        blocks = [bytearray(256 << 20) for _ in range(16)]
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return len(blocks)
