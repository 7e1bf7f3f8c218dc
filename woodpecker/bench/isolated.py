"""Time contenders each in a process of its own, in interleaved rounds.

Why a process each: runtimes keep their worker threads spinning for a while after every call (onnxruntime's
intra-op pool, TVM's thread pool, torch's OpenMP workers), so in one process the contender that just ran steals the
cores of the next. On the 2-core development machine ResNet-18 under woodpecker took 31 ms alone and 78 ms when
it alternated with an onnxruntime session in the same process. A user deploys one runtime per process, so that is
what is timed: the parent starts one worker process per contender (a fresh interpreter, woodpecker.measure.child, prepared one after another so that
no preparation, e.g. MetaSchedule's tuning, competes with another), then runs rounds in which each worker in turn
runs `warmup` untimed runs (they absorb the previous worker's spinning tail and refill the caches) and `per_round`
timed runs back to back; the idle workers wait on a pipe. The order rotates by one contender each round, so that
every contender follows every other equally often: whatever one runtime leaves behind on the cores (spinning
threads, a cold cache, a lowered clock) is not charged to the same neighbour every time. The figure is the median of single-run latencies and the
spread the interquartile range. A worker that crashes, hangs past the timeout or fails to prepare becomes an
error for its contender only.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a worker builds its contender: a baseline of woodpecker.bench.baselines, or a saved woodpecker artifact."""

    name: str
    kind: str  # "baseline" (name is the baseline) or "artifact" (path is a .wpk)
    path: str  # the ONNX model (baseline) or the artifact
    trials: int = 64  # tuning budget of a baseline that tunes (MetaSchedule)


@dataclasses.dataclass(frozen=True)
class Timing:
    name: str
    median_ms: float | None
    p25_ms: float | None
    p75_ms: float | None
    runs: int
    setup_s: float
    note: str = ""
    error: str | None = None
    outputs: tuple[np.ndarray, ...] = ()  # one run's outputs, for the caller's correctness check


def _prepare(recipe: Recipe, feed: Mapping[str, np.ndarray], threads: int) -> tuple[Callable[[], Any], list, str]:
    if recipe.kind == "artifact":
        import woodpecker

        cm = woodpecker.load(recipe.path)
        outs = cm.run(dict(feed))
        outputs = [np.array(outs[t.name]) for t in cm.outputs]
        chosen = cm.whole_model_vendor
        return cm.runner(dict(feed)), outputs, f"whole model in {chosen} (planner's choice)" if chosen else ""
    from woodpecker.bench import baselines as bl

    with open(recipe.path, "rb") as f:
        prepared = bl.prepare(recipe.name, f.read(), feed, threads, recipe.trials)
    outputs = [np.array(o) for o in prepared.outputs()]
    return prepared.run, outputs, prepared.note


def _worker(conn, recipe: Recipe, feed: Mapping[str, np.ndarray], threads: int) -> None:
    t0 = time.perf_counter()
    try:
        run, outputs, note = _prepare(recipe, feed, threads)
    except Exception as err:  # noqa: BLE001 - reported to the parent as this contender's error
        conn.send(("error", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
        return
    conn.send(("ready", time.perf_counter() - t0, note, outputs))
    while True:
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


class _Worker:
    def __init__(self, ctx, recipe: Recipe, feed, threads: int) -> None:
        self.recipe = recipe
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, recipe, dict(feed), threads), daemon=True)
        self.proc.start()
        child.close()
        self.error: str | None = None
        self.setup_s, self.note, self.outputs = 0.0, "", []
        self.samples: list[float] = []

    def receive(self, timeout_s: float):
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"no answer within {timeout_s:.0f} s")
        return self.conn.recv()

    def fail(self, message: str) -> None:
        self.error = message
        if self.proc.is_alive():
            self.proc.kill()

    def stop(self) -> None:
        if self.proc.is_alive() and self.error is None:
            try:
                self.conn.send(("stop",))
            except OSError:
                pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def time_isolated(recipes: Sequence[Recipe], feed: Mapping[str, np.ndarray], threads: int, rounds: int = 10,
                  per_round: int = 5, warmup: int = 3, prepare_timeout_s: float = 3600.0,
                  round_timeout_s: float = 600.0, progress: Callable[[str], None] = lambda msg: None) -> list[Timing]:
    """Timings in the order of `recipes`; see the module docstring for the method."""
    from woodpecker.measure.child import CONTEXT as ctx

    workers: list[_Worker] = []
    try:
        for recipe in recipes:
            progress(f"preparing {recipe.name}")
            w = _Worker(ctx, recipe, feed, threads)
            workers.append(w)
            try:
                msg = w.receive(prepare_timeout_s)
            except (TimeoutError, EOFError, OSError) as err:
                w.fail(f"worker died or hung while preparing ({err or 'exited'})")
                continue
            if msg[0] == "error":
                w.fail(msg[1])
            else:
                _, w.setup_s, w.note, w.outputs = msg
        progress("timing (interleaved, one process per contender)")
        for r in range(rounds):
            k = r % max(1, len(workers))
            for w in workers[k:] + workers[:k]:
                if w.error is not None:
                    continue
                try:
                    w.conn.send(("time", per_round, warmup))
                    w.samples += w.receive(round_timeout_s)
                except (TimeoutError, EOFError, OSError) as err:
                    w.fail(f"worker died or hung while timing ({err or 'exited'})")
    finally:
        for w in workers:
            w.stop()
    out = []
    for w in workers:
        xs = sorted(w.samples)
        if w.error is not None or not xs:
            out.append(Timing(w.recipe.name, None, None, None, len(xs), w.setup_s, w.note, w.error or "no runs"))
            continue
        q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
        out.append(Timing(w.recipe.name, statistics.median(xs) * 1e3, q[0] * 1e3, q[2] * 1e3, len(xs), w.setup_s,
                          w.note, None, tuple(w.outputs)))
    return out
