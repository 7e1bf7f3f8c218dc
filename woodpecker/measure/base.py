"""The measurement skeleton every backend shares, as TVM's meta_schedule splits it: a batch `Builder` (candidates
in, built artifacts or errors out) and a batch `Runner` (built artifacts in, timings or errors out), composed by
`ComposedMeasurer` into the interface the tuner uses (`Measurer`: set_reference / measure / measure_many / close).

A backend supplies only what differs: how a candidate is built (a host library, a CUDA binary, a RISC-V object,
the features a GPU model estimates from) and how it is run (timed here, on a GPU, under qemu, on an RPC device,
estimated). Errors are data: a candidate that fails to build or run gets its reason in its MeasureResult; the
batch goes on. Every runner checks the output against the task's reference before any time counts
(woodpecker.measure.correctness).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from woodpecker.lowering.model import Task
from woodpecker.measure.reference import ReferenceStore
from woodpecker.measure.result import MeasureResult

Candidate = tuple[Task, Mapping[str, Any]]  # a task and one point of its search space (knob -> value)


@dataclasses.dataclass(frozen=True)
class Built:
    """A built candidate: `artifact` (a path or whatever the runner takes) or the reason it failed."""

    artifact: Any
    error: str | None = None
    build_secs: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class Ran:
    """A run of a built candidate: its timed repeats in seconds, or the reason it failed (a wrong result, a crash,
    a timeout); `details` carries what a backend reports beyond time (simulated counts, a model's estimate)."""

    run_secs: tuple[float, ...] = ()
    error: str | None = None
    details: Any = None


@dataclasses.dataclass(frozen=True)
class RunInput:
    task: Task
    knobs: Mapping[str, Any]
    built: Built
    reference_path: str  # the task's .npz of reference inputs and expected output (ReferenceStore)


class Builder(Protocol):
    def build(self, candidates: Sequence[Candidate]) -> list[Built]: ...

    def close(self) -> None: ...


class Runner(Protocol):
    def run(self, inputs: Sequence[RunInput]) -> list[Ran]: ...

    def close(self) -> None: ...


class MeasurerLike(Protocol):
    """What the tuner needs of a measurer (woodpecker.testing.fakes.FakeMeasurer has it too)."""

    def set_reference(self, task: Task, inputs: Sequence[np.ndarray], expected: np.ndarray) -> None: ...

    def measure(self, task: Task, points: Sequence[Mapping[str, Any]]) -> list[MeasureResult]: ...

    def measure_many(self, items: Sequence[Candidate]) -> list[MeasureResult]: ...

    def close(self) -> None: ...


class ComposedMeasurer:
    """A Builder and a Runner behind the Measurer interface: the batch is built first (in parallel, as the builder
    does it), then the built candidates are run (one at a time or in parallel, as the runner does it), so that a
    timing never shares the cores with a compile."""

    def __init__(self, builder: Builder, runner: Runner, reference_prefix: str = "woodpecker-io-") -> None:
        self.builder, self.runner_stage = builder, runner
        self._references = ReferenceStore(reference_prefix)
        self.last_details: list[Any] = []  # each candidate's Ran.details in the last batch (None where none)

    # -- reference data ------------------------------------------------------------------------------------------
    def set_reference(self, task: Task, inputs: Sequence[np.ndarray], expected: np.ndarray) -> None:
        self._references.add(task, inputs, expected)

    def has_reference(self, task: Task) -> bool:
        return task in self._references

    # -- measuring -----------------------------------------------------------------------------------------------
    def measure(self, task: Task, points: Sequence[Mapping[str, Any]]) -> list[MeasureResult]:
        return self.measure_many([(task, p) for p in points])

    def measure_many(self, items: Sequence[Candidate]) -> list[MeasureResult]:
        """Candidates of any tasks: all built first, then the built ones run."""
        self._references.require(task for task, _ in items)
        builds = self.builder.build(items)
        if len(builds) != len(items):
            raise RuntimeError(f"the builder returned {len(builds)} results for {len(items)} candidates")
        results: list[MeasureResult | None] = [None] * len(items)
        details: list[Any] = [None] * len(items)
        to_run = []
        for i, b in enumerate(builds):
            if b.ok:
                to_run.append(i)
            else:
                results[i] = MeasureResult((), b.error, b.build_secs)
        runs = self.runner_stage.run([RunInput(items[i][0], items[i][1], builds[i],
                                               self._references.path(items[i][0])) for i in to_run])
        if len(runs) != len(to_run):
            raise RuntimeError(f"the runner returned {len(runs)} results for {len(to_run)} candidates")
        for i, r in zip(to_run, runs, strict=True):
            results[i] = MeasureResult(tuple(r.run_secs), r.error, builds[i].build_secs)
            details[i] = r.details
        self.last_details = details
        return results  # type: ignore[return-value]

    def close(self) -> None:
        # the runner first: it may hold a lease (an RPC session, a GPU) the builder does not
        self.runner_stage.close()
        self.builder.close()
        self._references.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
