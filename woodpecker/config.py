"""Every WOODPECKER_* environment knob, typed, in one place; nothing else in the package reads os.environ.

Tests override knobs with `config.override(...)`, a context manager, so that they never touch the user's cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
from collections.abc import Iterator


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        from woodpecker.errors import WoodpeckerError

        raise WoodpeckerError(f"environment variable {name}={raw!r} is not an integer") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class Config:
    # Where compiled artifacts are unpacked and kernel builds are cached.
    cache_dir: pathlib.Path
    # Threads used by generated kernels; TVM's own default is half the cores on x86 (1 on a 2-core machine).
    num_threads: int
    # Show tracebacks instead of one-line errors.
    debug: bool
    # Let the planner time vendor libraries against generated kernels when compiling (WOODPECKER_VENDOR=0: off).
    vendor: bool = True
    # Hardware profiles are read from this folder instead of the built-in hw_profiles/ (WOODPECKER_PROFILES_DIR).
    profiles_dir: pathlib.Path | None = None
    # Time CPU tuning candidates with cold caches: every run after a flush of the weights and the output, as in a
    # model, where each kernel's weights were evicted by the kernels before it. On by default: hot-loop times
    # understate in-model ones about 2x on ResNet-50 and steer the tuner wrong (WOODPECKER_COLD_CACHE=0: hot loops).
    cold_cache: bool = True
    # Fresh processes per whole-model contender when the planner decides between builds (one process is one sample:
    # a process's speed mode lasts its life). Each costs a model load and 9 runs (WOODPECKER_PLAN_PROCESSES).
    plan_processes: int = 5
    # Back the executor's arena and constants with transparent huge pages where Linux allows it
    # (woodpecker.runtime.host_memory; WOODPECKER_HUGE_PAGES=0: ordinary 4 KiB pages).
    huge_pages: bool = True


def _from_env() -> Config:
    cache_root = os.environ.get("WOODPECKER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "woodpecker"
    )
    return Config(
        cache_dir=pathlib.Path(cache_root),
        num_threads=_env_int("WOODPECKER_NUM_THREADS", os.cpu_count() or 1),
        debug=_env_bool("WOODPECKER_DEBUG", False),
        vendor=_env_bool("WOODPECKER_VENDOR", True),
        profiles_dir=pathlib.Path(os.environ["WOODPECKER_PROFILES_DIR"]) if os.environ.get("WOODPECKER_PROFILES_DIR") else None,
        cold_cache=_env_bool("WOODPECKER_COLD_CACHE", True),
        plan_processes=max(1, _env_int("WOODPECKER_PLAN_PROCESSES", 5)),
        huge_pages=_env_bool("WOODPECKER_HUGE_PAGES", True),
    )


_current: Config | None = None


def get() -> Config:
    global _current
    if _current is None:
        _current = _from_env()
    return _current


@contextlib.contextmanager
def override(**changes: object) -> Iterator[Config]:
    """Temporarily replace config fields (for tests)."""
    global _current
    saved = get()
    _current = dataclasses.replace(saved, **changes)  # type: ignore[arg-type]
    try:
        yield _current
    finally:
        _current = saved


def prepare_tvm_threads() -> int:
    """Set TVM_NUM_THREADS before TVM's thread pool starts: it is read once, at the first kernel launch.

    Measurement workers, the tuner and the final runtime all call this, so every candidate is timed with the
    thread count it will run with.
    """
    n = get().num_threads
    os.environ.setdefault("TVM_NUM_THREADS", str(n))
    return int(os.environ["TVM_NUM_THREADS"])


def skip_torch_import() -> None:
    """Make `import torch` fail fast in this process (for processes that never need torch).

    tvm_ffi imports torch eagerly when it is installed (1.5 s of a 4.5 s `import tvm`), only to pre-empt a
    symbol clash seen on Windows. Measurement workers and the runtime-only commands call this before importing
    TVM; anything that needs torch (the RL searcher, the PyTorch frontend) must not.
    """
    import sys

    if "torch" not in sys.modules and "tvm" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]


# Runtimes' wait policies for a process that mixes runtimes (per-call planning, a planned model): PyTorch's OpenMP
# workers sleep at once instead of spinning on the cores the next runtime's call needs (onnxruntime's per-call
# sessions are made without spinning, choices.ort_session). Read once, when a runtime loads (libgomp at load), so it
# only takes effect when set before. Measured (benchmarks/switch_cost.py, a 170 us convolution of ResNet-18/112
# between vendor calls, 5 processes per mode): with every runtime's default a torch call and the kernel cost 1507 us
# as a pair (a switch 393 us), with OpenMP passive 694 us (a switch about 0). TVM's own pool keeps its default spin:
# cut to 0 every generated kernel waited for its workers to wake (170 -> 200 us alone), and cut to 1000 whole
# models ran 1.6x slower (MobileNetV2's own program 5.9 ms against 3.7 ms in a process with TVM's default).
PASSIVE_WAITS = (("OMP_WAIT_POLICY", "PASSIVE"),)


def use_passive_waits() -> None:
    """Set PASSIVE_WAITS in this process unless the user set them. Where torch (libgomp) has loaded already it is
    too late: a planned model then runs with spinning OpenMP workers, slower than it was timed."""
    for k, v in PASSIVE_WAITS:
        os.environ.setdefault(k, v)

