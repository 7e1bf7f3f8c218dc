"""The functions that run inside worker processes: build one candidate, run one candidate.

They take and return plain data (paths, dicts, tuples) so that nothing but arguments crosses the process boundary.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

_MODULES: dict[str, Any] = {}  # loaded libraries, per worker


def build_path(build_dir, task, knobs: Mapping[str, Any], *identity: Any, suffix: str = ".so") -> str:
    """Where a candidate's compiled object is cached: a hash of the workload, the kernel's symbol, the knobs and
    whatever else decides the build (`identity`: target, compiler, toolchain). The symbol is part of it because one
    workload is named differently in different models (a shared cache once handed ResNet-18 a library built under
    ResNet-50's name)."""
    from woodpecker.space.space import canonical_json

    ident = json.dumps([task.key, task.name, canonical_json(knobs), codegen_digest(), *identity], sort_keys=True)
    return str(pathlib.Path(build_dir) / f"{hashlib.sha256(ident.encode()).hexdigest()[:24]}{suffix}")


@functools.cache
def codegen_digest() -> str:
    """A hash of the sources that turn a task and its knobs into code (the DSL's lowering to TIR, the schedule
    templates). Part of the build cache key: a template change that keeps what the knobs mean (so tuning records
    still apply, and SCHEDULE_VERSION stays) still changes the code, and a cached object built by the older
    template would otherwise be timed in its place."""
    root = pathlib.Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in ("dsl", "schedule"):
        for f in sorted((root / sub).iterdir()):
            if f.suffix in (".py", ".lark"):
                h.update(f.name.encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build_job(task, knobs: Mapping[str, Any], target: Mapping[str, Any], out_path: str, target_class: str) -> dict:
    """Schedule, compile and export one candidate to `out_path` (skipped when that file already exists)."""
    from woodpecker import config

    config.prepare_tvm_threads()
    t0 = time.perf_counter()
    if os.path.exists(out_path):
        return {"path": out_path, "build_secs": 0.0, "cached": True}
    import tvm

    from woodpecker.schedule.apply import schedule

    mod = schedule(task, knobs, target_class)
    ex = tvm.compile(mod, target=tvm.target.Target(dict(target)))
    tmp = f"{out_path}.{os.getpid()}.tmp.so"
    ex.export_library(tmp)
    os.replace(tmp, out_path)
    return {"path": out_path, "build_secs": time.perf_counter() - t0, "cached": False}


COLD_RUNS = 20  # single runs timed with cold caches (each one is short, so more of them)


def run_job(lib_path: str, func: str, io_path: str, repeat: int, min_repeat_ms: int, rtol: float,
            cold_cache: bool = False) -> dict:
    """Load the candidate, check its output against the reference, then time it.

    A candidate whose output differs from the reference by more than `rtol` (relative to the output's magnitude)
    is rejected before it is timed: its time never counts.

    Hot (default): `repeat` figures, each the mean of back-to-back runs lasting at least `min_repeat_ms`, so the
    weights stay in cache. Cold (`cold_cache`): single runs, each after TVM's flush of every argument but the first
    (the input activation, which the previous kernel of a model has just written), as inside a model.
    """
    from woodpecker import config

    config.prepare_tvm_threads()
    import tvm

    from woodpecker.measure.correctness import relative_error

    dev = tvm.cpu(0)
    mod = _MODULES.get(lib_path)
    if mod is None:
        mod = tvm.runtime.load_module(lib_path)
        _MODULES.clear()  # one candidate at a time: keep memory flat over a long session
        _MODULES[lib_path] = mod
    with np.load(io_path, allow_pickle=False) as npz:
        n_in = int(npz["n_inputs"])
        inputs = [npz[f"in{i}"] for i in range(n_in)]
        expected = npz["expected"]
    args = [tvm.runtime.tensor(a, dev) for a in inputs]
    out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
    f = mod[func]
    f(*args, out)
    err = relative_error(out.numpy(), expected)
    if not err <= rtol:
        return {"run_secs": [], "error": f"wrong result: max relative error {err:.3g} > {rtol:g}"}
    res = cpu_timer(mod, func, dev, repeat, min_repeat_ms, cold_cache)(*args, out)
    return {"run_secs": [float(x) for x in res.results], "error": None}


def cpu_timer(mod, func: str, dev, repeat: int, min_repeat_ms: int, cold_cache: bool):
    """TVM's time evaluator for a CPU candidate, local or over RPC (see run_job for hot and cold timing)."""
    if cold_cache:
        return mod.time_evaluator(func, dev, number=1, repeat=max(repeat, COLD_RUNS), min_repeat_ms=0,
                                  f_preproc="cache_flush_cpu_non_first_arg")
    return mod.time_evaluator(func, dev, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
