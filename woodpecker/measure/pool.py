"""WorkerPool: run functions in separate processes, each call with a deadline.

A call that raises returns its error as data; a call whose process dies (segfault, out of memory, os._exit) or
passes its deadline returns an error and the process is replaced. The parent is never taken down by a candidate.
Workers are fresh interpreters (no inherited TVM state; woodpecker.measure.child, which never re-runs the user's
script) and persist across calls. When the parent dies
(even by SIGKILL) each worker sees its pipe close and exits.
"""

from __future__ import annotations

import dataclasses
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from woodpecker.measure.child import CONTEXT


@dataclasses.dataclass(frozen=True)
class CallResult:
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


def describe_error(err: BaseException) -> str:
    """One line: exception type, the first line of its message, and where it was raised."""
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{where}"


def _worker_main(conn: Connection, skip_torch: bool = True) -> None:
    # Workers ignore Ctrl-C: the parent decides when to stop and terminates them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if skip_torch:
        from woodpecker.config import skip_torch_import

        skip_torch_import()  # builds and runs never need torch; this saves 1.5 s per worker start
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        t0 = time.perf_counter()
        try:
            value = fn(*args)
            reply = CallResult(value, None, time.perf_counter() - t0)
        except BaseException as err:  # noqa: BLE001 - every failure of a candidate is data
            reply = CallResult(None, describe_error(err), time.perf_counter() - t0)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def describe_exit(code: int | None) -> str:
    if code is None:
        return "worker died"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker crashed ({name})"
    return f"worker exited with status {code}"


class _Worker:
    def __init__(self, env: dict[str, str], skip_torch: bool) -> None:
        self.conn, child = CONTEXT.Pipe()
        self.proc = CONTEXT.Process(target=_worker_main, args=(child, skip_torch), daemon=True, env=env)
        self.proc.start()
        child.close()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class WorkerPool:
    def __init__(self, size: int, env: dict[str, str] | None = None, torch: bool = False) -> None:
        """`size` workers with `env` added to their environment; `torch=True` for jobs that use PyTorch (the
        planner's vendor choices): other workers make `import torch` fail fast, which saves 1.5 s a start."""
        self.size = max(1, int(size))
        self._skip_torch = not torch
        self._env = env or {}
        self._workers: list[_Worker | None] = [None] * self.size

    def _worker(self, i: int) -> _Worker:
        w = self._workers[i]
        if w is None or not w.proc.is_alive():
            w = self._workers[i] = _Worker(self._env, self._skip_torch)
        return w

    def _replace(self, i: int) -> None:
        w = self._workers[i]
        if w is not None:
            w.kill()
        self._workers[i] = None

    def map(self, fn: Callable[..., Any], arg_list: Sequence[tuple], timeout_s: float | Sequence[float]) -> list[CallResult]:
        """Run fn(*args) for each args tuple, at most `size` at a time; results in input order."""
        timeouts = list(timeout_s) if isinstance(timeout_s, (list, tuple)) else [float(timeout_s)] * len(arg_list)
        results: list[CallResult | None] = [None] * len(arg_list)
        pending = list(range(len(arg_list)))
        running: dict[int, tuple[int, float, float]] = {}  # worker -> (job, deadline, start)
        while pending or running:
            for i in range(self.size):
                if i not in running and pending:
                    job = pending.pop(0)
                    w = self._worker(i)
                    try:
                        w.conn.send((fn, arg_list[job]))
                    except (BrokenPipeError, OSError):
                        self._replace(i)
                        results[job] = CallResult(None, "worker could not be started")
                        continue
                    start = time.monotonic()
                    running[i] = (job, start + timeouts[job], start)
            if not running:
                continue
            conns = {self._workers[i].conn: i for i in running}  # type: ignore[union-attr]
            nearest = min(d for _, d, _ in running.values())
            ready = wait(list(conns), timeout=max(0.0, nearest - time.monotonic()))
            for conn in ready:
                i = conns[conn]  # type: ignore[index]
                job, _, start = running.pop(i)
                try:
                    results[job] = conn.recv()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    w = self._workers[i]
                    w.proc.join(timeout=5)  # type: ignore[union-attr]
                    results[job] = CallResult(None, describe_exit(w.proc.exitcode), time.monotonic() - start)  # type: ignore[union-attr]
                    self._replace(i)
            now = time.monotonic()
            for i, (job, deadline, start) in list(running.items()):
                if now >= deadline:
                    running.pop(i)
                    self._replace(i)
                    results[job] = CallResult(None, f"timeout after {timeouts[job]:.0f} s", now - start)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for i in range(self.size):
            self._replace(i)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
