"""Whole-model timing: each contender in fresh processes, one process one sample, interleaved and rotated.

Why a process each: runtimes keep their worker threads spinning for a while after every call (onnxruntime's
intra-op pool, TVM's thread pool, torch's OpenMP workers), so in one process the contender that just ran steals the
cores of the next. On the 2-core development machine ResNet-18 under woodpecker took 31 ms alone and 78 ms when
it alternated with an onnxruntime session in the same process. A user deploys one runtime per process, so that is
what is timed.

Why fresh processes, several per contender: on a shared VM a process lands in a fast or a slow mode that lasts its
whole life (same artifact, per-process medians 4.0 and 8.1 ms), so the runs of one process are one sample however
many there are; four processes swung a comparison by 1.5x. So the timing goes in rounds: in each round every
contender, in an order rotated by one each round, gets a fresh process (woodpecker.measure.child: an interpreter
that never re-runs the user's script) which prepares it, makes `warmup` untimed runs and `per_round` timed runs,
and exits before the next one starts (nothing of it is left spinning). A contender's figure is the median of its
per-process medians with their quartiles as the spread (woodpecker.measure.decision, which also decides between
them). A worker that crashes, hangs past the timeout or fails to prepare becomes an error for its contender only.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.measure.decision import ProcessSamples


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a worker builds its contender: a baseline of woodpecker.measure.baselines, or a saved woodpecker artifact."""

    name: str
    kind: str  # "baseline" (name is the baseline) or "artifact" (path is a .wpk)
    path: str  # the ONNX model (baseline) or the artifact
    trials: int = 64  # tuning budget of a baseline that tunes (MetaSchedule)
    env: tuple[tuple[str, str], ...] = ()  # set in the worker before anything loads (e.g. runtimes' wait policies)


@dataclasses.dataclass(frozen=True)
class Timing:
    name: str
    median_ms: float | None  # median of the per-process medians
    p25_ms: float | None  # quartiles of the per-process medians (the spread)
    p75_ms: float | None
    runs: int  # timed runs over all processes
    setup_s: float  # the first process's preparation (a tuning baseline tunes there)
    note: str = ""
    error: str | None = None
    outputs: tuple[np.ndarray, ...] = ()  # one run's outputs, for the caller's correctness check
    process_ms: tuple[float, ...] = ()  # each process's median, in the order they ran

    @property
    def samples(self) -> ProcessSamples | None:
        return ProcessSamples(self.name, self.process_ms) if self.process_ms else None


def _prepare(recipe: Recipe, feed: Mapping[str, np.ndarray], threads: int,
             build_dir: str) -> tuple[Callable[[], Any], list, str]:
    if recipe.kind == "artifact":
        from woodpecker.runtime.load import load_artifact

        cm = load_artifact(recipe.path)
        outs = cm.run(dict(feed))
        outputs = [np.array(outs[t.name]) for t in cm.outputs]
        chosen = cm.whole_model_vendor
        return cm.runner(dict(feed)), outputs, f"whole model in {chosen} (planner's choice)" if chosen else ""
    from woodpecker.measure import baselines as bl

    with open(recipe.path, "rb") as f:
        prepared = bl.prepare(recipe.name, f.read(), feed, threads, recipe.trials, build_dir=build_dir)
    outputs = [np.array(o) for o in prepared.outputs()]
    return prepared.run, outputs, prepared.note


def _worker(conn, recipe: Recipe, feed: Mapping[str, np.ndarray], threads: int, build_dir: str) -> None:
    t0 = time.perf_counter()
    try:
        run, outputs, note = _prepare(recipe, feed, threads, build_dir)
    except Exception as err:  # noqa: BLE001 - reported to the parent as this contender's error
        conn.send(("error", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
        return
    conn.send(("ready", time.perf_counter() - t0, note, outputs))
    cmd = conn.recv()
    if cmd[0] == "stop":
        return
    _, n, warmup = cmd
    for _ in range(warmup):
        run()
    secs = []
    for _ in range(n):
        t = time.perf_counter()
        run()
        secs.append(time.perf_counter() - t)
    conn.send(secs)


class _Contender:
    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.error: str | None = None
        self.setup_s, self.note, self.outputs = 0.0, "", []
        self.process_ms: list[float] = []
        self.runs = 0


def _one_process(c: _Contender, feed, threads: int, build_dir: str, per_round: int, warmup: int,
                 prepare_timeout_s: float, round_timeout_s: float) -> None:
    """Start a fresh worker for contender c, prepare, time, stop it; its median joins c's samples."""
    from woodpecker.measure.child import CONTEXT

    conn, child = CONTEXT.Pipe()
    proc = CONTEXT.Process(target=_worker, args=(child, c.recipe, dict(feed), threads, build_dir), daemon=True,
                           env=dict(c.recipe.env))
    proc.start()
    child.close()

    def receive(timeout_s: float, what: str):
        if not conn.poll(timeout_s):
            raise TimeoutError(f"worker hung while {what} (no answer within {timeout_s:.0f} s)")
        return conn.recv()

    try:
        msg = receive(prepare_timeout_s, "preparing")
        if msg[0] == "error":
            c.error = msg[1]
            return
        _, setup_s, note, outputs = msg
        if not c.process_ms:
            c.setup_s, c.note, c.outputs = setup_s, note, outputs
        conn.send(("time", per_round, warmup))
        secs = receive(round_timeout_s, "timing")
        c.process_ms.append(statistics.median(secs) * 1e3)
        c.runs += len(secs)
    except TimeoutError as err:
        c.error = str(err)
    except (EOFError, OSError):
        proc.join(5)
        c.error = f"worker died (exit status {proc.exitcode})"
    finally:
        conn.close()
        proc.join(5)
        proc.kill()


def time_isolated(recipes: Sequence[Recipe], feed: Mapping[str, np.ndarray], threads: int, rounds: int = 5,
                  per_round: int = 6, warmup: int = 3, prepare_timeout_s: float = 3600.0,
                  round_timeout_s: float = 600.0, progress: Callable[[str], None] = lambda msg: None) -> list[Timing]:
    """Timings in the order of `recipes`: `rounds` fresh processes per contender (see the module docstring)."""
    contenders = [_Contender(r) for r in recipes]
    with tempfile.TemporaryDirectory(prefix="woodpecker-timing-") as work:
        for r in range(rounds):
            k = r % max(1, len(contenders))
            for c in contenders[k:] + contenders[:k]:
                if c.error is not None:
                    continue
                progress(f"timing {c.recipe.name}: process {len(c.process_ms) + 1}/{rounds}")
                # a baseline that builds for long (MetaSchedule tunes) keeps its build here for the next processes
                build_dir = os.path.join(work, c.recipe.name.replace(os.sep, "_"))
                os.makedirs(build_dir, exist_ok=True)
                _one_process(c, feed, threads, build_dir, per_round, warmup, prepare_timeout_s, round_timeout_s)
    out = []
    for c in contenders:
        if c.error is not None or not c.process_ms:
            out.append(Timing(c.recipe.name, None, None, None, c.runs, c.setup_s, c.note, c.error or "no runs"))
            continue
        s = ProcessSamples(c.recipe.name, tuple(c.process_ms))
        out.append(Timing(c.recipe.name, s.median_ms, s.low_ms, s.high_ms, c.runs, c.setup_s, c.note, None,
                          tuple(c.outputs), tuple(c.process_ms)))
    return out
