"""Child processes that never re-run the user's script: a fresh interpreter runs one woodpecker function.

multiprocessing's "spawn" (and "forkserver") start a child by importing the parent's `__main__` again. When
`woodpecker.compile` is called from a plain script without an `if __name__ == "__main__":` guard, that re-import
runs the user's script, which compiles again and then dies in multiprocessing's "bootstrapping phase" check; the
parent waited for the dead child's answer (15 minutes in the report that found it). "fork" is no way out either:
TVM's and onnxruntime's thread pools do not survive a fork.

A ChildProcess is started with `subprocess` instead: `python -c "...child._bootstrap()"` reads the parent's
sys.path, the function and its arguments from its stdin (pickled), re-opens any `multiprocessing` Connection among
the arguments from an inherited descriptor, and calls the function. Nothing of `__main__` is imported, so it
behaves the same from a script, a notebook, `python -c` or a test runner. The interface is the subset of
`multiprocessing.Process` that woodpecker's pools use, so `CONTEXT` stands in for `mp.get_context("spawn")`.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import weakref
from collections.abc import Callable, Mapping
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

_LIVE: weakref.WeakSet[ChildProcess] = weakref.WeakSet()


class _InheritedConnection:
    """Stands for a Connection argument while it crosses to the child: the descriptor number it is inherited at."""

    def __init__(self, fd: int) -> None:
        self.fd = fd


def _package_root() -> str:
    # the folder that holds the woodpecker package, so the child can import it before it has read sys.path
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ChildProcess:
    """`target(*args)` in a fresh interpreter; Connection arguments are passed as inherited descriptors."""

    def __init__(self, target: Callable[..., Any], args: tuple = (), daemon: bool = True,
                 env: Mapping[str, str] | None = None) -> None:
        self._target, self._args, self._env = target, tuple(args), dict(env or {})
        self.daemon = daemon  # always killed with the parent (atexit, or its pipes closing); kept for mp parity
        self._popen: subprocess.Popen | None = None

    def start(self) -> None:
        fds = [a.fileno() for a in self._args if isinstance(a, Connection)]
        args = tuple(_InheritedConnection(a.fileno()) if isinstance(a, Connection) else a for a in self._args)
        env = dict(os.environ)
        env.update(self._env)
        root = _package_root()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        code = "from woodpecker.measure.child import _bootstrap; _bootstrap()"
        self._popen = subprocess.Popen([_executable(), "-c", code], stdin=subprocess.PIPE, pass_fds=fds, env=env)
        assert self._popen.stdin is not None
        try:
            # two pickles: the path first, so that the child can import the modules the second one names
            pickle.dump(list(sys.path), self._popen.stdin)
            pickle.dump((self._target, args), self._popen.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._popen.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the child died at start; its exit code says so
        _LIVE.add(self)

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def exitcode(self) -> int | None:
        """None while running; the exit status, or minus the signal number that killed it (as multiprocessing)."""
        return self._popen.poll() if self._popen else None

    def is_alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        if self._popen is None:
            return
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        if self.is_alive():
            self._popen.kill()  # type: ignore[union-attr]

    terminate = kill


class CleanContext:
    """The part of a multiprocessing context that woodpecker uses, starting ChildProcesses."""

    @staticmethod
    def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:  # noqa: N802 - multiprocessing's name
        return Pipe(duplex)

    @staticmethod
    def Process(target: Callable[..., Any], args: tuple = (), daemon: bool = True,  # noqa: N802
                env: Mapping[str, str] | None = None) -> ChildProcess:
        return ChildProcess(target, args, daemon, env)


CONTEXT = CleanContext()


def _executable() -> str:
    from multiprocessing import spawn

    return spawn.get_executable() or sys.executable


def _bootstrap() -> None:
    """The child's entry: read sys.path, then the call, from stdin; run it with its Connections re-opened."""
    stdin = sys.stdin.buffer
    sys.path[:] = pickle.load(stdin)
    target, args = pickle.load(stdin)
    stdin.close()
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the child's stdin for the rest of its life
    args = tuple(Connection(a.fd) if isinstance(a, _InheritedConnection) else a for a in args)
    target(*args)


@atexit.register
def _kill_children() -> None:
    # what multiprocessing does for daemonic children: none outlives the parent's interpreter
    for child in list(_LIVE):
        child.kill()
