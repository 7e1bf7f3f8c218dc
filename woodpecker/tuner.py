"""The tuning loop: the one module that wires tasks, search spaces, searchers, measurement and records together.

    tasks <- the model's kernels, deduplicated by workload (weight = calls per model run)
    for each task: history and visited points from the database (a rerun measures nothing twice);
                   its default schedule is measured first: the baseline of "speedup over default"
    while budget (trials or seconds) remains and some task is active:
        pick the task with the largest expected gain: calls x best latency x recent improvement
        points <- searcher.propose(batch)            (never a point already measured)
        results <- build in workers, run isolated, check against the numpy reference
        database.add(records)                        (one transaction: a kill loses at most this batch)
        searcher.observe(points, costs); cost model refit
        a task stops when `early_stop` trials pass without a 1 % improvement, or its space is exhausted
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from woodpecker.errors import BudgetError
from woodpecker.lowering.model import LoweredModel, Task
from woodpecker.records.db import RecordsDatabase, now_iso, open_database
from woodpecker.records.schema import Device, TuningRecord
from woodpecker.search.base import CostModelLike, SearchContext, Searcher, create
from woodpecker.space.space import SearchSpace, point_key

if TYPE_CHECKING:  # the measurers and targets import TVM; the tuner's types need not
    from woodpecker.measure.base import MeasurerLike
    from woodpecker.measure.result import MeasureOptions
    from woodpecker.targets import Target

IMPROVEMENT = 0.01  # a new best must be 1 % faster to count as progress for early stopping
# Side-by-side pairs (default, best) each task's best is re-timed in at the end of a session (_Session._verify)
VERIFY_PAIRS = 3


@dataclasses.dataclass
class TaskState:
    task: Task
    calls: int
    space: SearchSpace
    searcher: Searcher
    cost_model: CostModelLike | None
    default_us: float | None = None
    best_us: float | None = None
    best_knobs: dict | None = None
    trials: int = 0  # measured in this session
    previous: int = 0  # records from earlier sessions
    failed: int = 0
    since_improvement: int = 0
    history_best: list[float] = dataclasses.field(default_factory=list)  # best after each batch
    done: str = ""  # why the task stopped ("" while active)
    verified: float | None = None  # its best re-timed beside its default at the session's end: default / best
    # point keys measured or proposed: the set the searcher was given (SearchContext.visited), owned by the tuner
    visited: set[str] = dataclasses.field(default_factory=set)

    def priority(self) -> float:
        if self.done:
            return -1.0
        base = self.calls * (self.best_us or self.default_us or 1.0)
        if len(self.history_best) < 3:
            return base * 2.0  # unexplored tasks first
        old, new = self.history_best[-3], self.history_best[-1]
        gain = (old - new) / old if old and math.isfinite(old) else 0.0
        return base * max(gain, 0.05)


@dataclasses.dataclass(frozen=True)
class TaskReport:
    name: str
    family: str
    workload: str
    calls: int
    trials: int
    records: int
    failed: int
    default_us: float | None
    best_us: float | None
    gflops: float | None
    stopped: str
    verified: float | None = None  # default / best re-timed side by side at the session's end (None: not re-timed)

    @property
    def speedup(self) -> float | None:
        if self.default_us and self.best_us:
            return self.default_us / self.best_us
        return None


@dataclasses.dataclass(frozen=True)
class TuneReport:
    tasks: tuple[TaskReport, ...]
    trials: int  # every measurement of the session: the default schedules' and the searched ones
    seconds: float
    stopped: str  # "budget" | "converged" | "interrupted"
    db_path: str
    device: Device
    defaults: int = 0  # of `trials`, default schedules (measured first, once per task without a record of one)

    @property
    def searched(self) -> int:
        return self.trials - self.defaults

    @property
    def default_ms(self) -> float:
        return sum(t.calls * (t.default_us or 0.0) for t in self.tasks) / 1e3

    @property
    def best_ms(self) -> float:
        return sum(t.calls * (t.best_us or t.default_us or 0.0) for t in self.tasks) / 1e3


@dataclasses.dataclass(frozen=True)
class Progress:
    """A snapshot for progress displays (the CLI renders it; tune() does not print)."""

    tasks: tuple[TaskState, ...]
    trials: int  # measurements so far, the default schedules' included
    trial_budget: int | None
    elapsed_s: float
    time_budget_s: float | None
    last_task: str
    defaults: int = 0  # of `trials`, default schedules

    @property
    def searched(self) -> int:
        return self.trials - self.defaults

    @property
    def eta_s(self) -> float | None:
        etas = []
        if self.trial_budget and self.trials:
            etas.append(self.elapsed_s / self.trials * (self.trial_budget - self.trials))
        if self.time_budget_s:
            etas.append(max(0.0, self.time_budget_s - self.elapsed_s))
        return min(etas) if etas else None

    @property
    def model_ms(self) -> float:
        return sum(t.calls * (t.best_us or t.default_us or 0.0) for t in self.tasks) / 1e3


def parse_duration(text: str) -> float:
    """'90s', '15m', '8h', '1h30m' or plain seconds -> seconds."""
    text = text.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    total, num = 0.0, ""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    for ch in text:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total += float(num) * units[ch]
            num = ""
        else:
            raise BudgetError(f"budget {text!r} is not a duration (examples: 90s, 15m, 8h, 1h30m)")
    if num or total <= 0:
        raise BudgetError(f"budget {text!r} is not a duration (examples: 90s, 15m, 8h, 1h30m)")
    return total


def _task_seed(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)


def task_features(task: Task, cores: int, lanes: int, simulated: bool) -> dict[str, Any]:
    from woodpecker.schedule.structure import analyze

    st = analyze(task.kernel)
    return {"family": task.family, "spatial": [a.extent for a in st.spatial], "reduction": [a.extent for a in st.reduction],
            "flops": task.flops, "cores": cores, "lanes": lanes, "simulated": simulated}


def default_db_path() -> str:
    from woodpecker import config

    return str(config.get().cache_dir / "records.db")


def prepare(model: Any, target: Any, input_shapes=None, example_inputs=None):
    """(Target, LoweredModel): the model lowered the way `compile` lowers it for that target."""
    from woodpecker.frontend.source import import_model
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.targets import resolve

    resolved = resolve(target)
    graph = import_model(model, input_shapes, example_inputs)
    return resolved, lower_graph(optimize(graph, resolved.pass_options()))


def tune(
    model: Any,
    target: str | Target = "host",
    *,
    searcher: str = "ga",
    trials: int | None = None,
    budget_s: float | None = None,
    db: str | RecordsDatabase | None = None,
    seed: int = 0,
    batch_size: int = 8,
    cost_model: bool = False,
    early_stop: int | None = 64,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    example_inputs: Any = None,
    progress: Callable[[Progress], None] | None = None,
    build_workers: int | None = None,
    searcher_options: Mapping[str, Any] | None = None,
    measure_options: MeasureOptions | None = None,
    measurer: MeasurerLike | None = None,
    only: Sequence[str] | None = None,
    cluster: str | None = None,
    rpc_tracker: str | None = None,
    rpc_key: str | None = None,
    lowered: LoweredModel | None = None,
) -> TuneReport:
    """Tune every kernel of a model for a target, keeping every measurement in the records database.

    Args:
        trials: measurements to make in this session. The default schedules count: each task without one on
            record has its default measured first, so a budget under the number of tasks searches nothing
            (Progress and TuneReport say how many of the trials were defaults).
        budget_s: wall-clock budget in seconds (the session stops after the batch that crosses it).
        db: database path (default: the per-user cache) or an open RecordsDatabase.
        early_stop: a task stops after this many trials without a 1 % improvement (None or 0: never).
        measure_options: repeats, timeouts, tolerance and timing mode (cold_cache) of the measurer this function
            makes (default: MeasureOptions(), cold-cache timing unless WOODPECKER_COLD_CACHE=0). Records are keyed
            by their timing mode: a session resumes only the records timed the same way.
        measurer: where candidates are measured (default: the target's, woodpecker.targets); anything with the
            methods of woodpecker.measure.base.MeasurerLike (woodpecker.testing.fakes.FakeMeasurer has them).
        only: tune only the tasks with these workload keys, names or families (default: every task).
        cluster: build and time on a Ray cluster: "ray://HOST:PORT", "HOST:PORT", or "local-ray" (woodpecker[cluster]).
        rpc_tracker, rpc_key: time on a device leased from the TVM RPC tracker "HOST:PORT" under this key.
        lowered: the model already lowered for this target (`compile --trials` passes the one it builds, so the
            model is imported and lowered once); `model` is then not read again.
    """
    from woodpecker import config
    from woodpecker.measure.result import MeasureOptions

    if trials is None and budget_s is None:
        raise BudgetError("give a trial count (--trials N) or a time budget (--budget 8h)")
    if trials is not None and (not isinstance(trials, int) or trials < 1):
        raise BudgetError(f"trials must be a positive integer, got {trials!r}")
    if budget_s is not None and not (budget_s > 0 and math.isfinite(budget_s)):
        raise BudgetError(f"the time budget must be a positive number of seconds, got {budget_s!r}")
    if batch_size < 1:
        raise BudgetError(f"batch size must be at least 1, got {batch_size}")
    if cluster or rpc_tracker or rpc_key:
        from woodpecker.measure.remote import check_remote

        check_remote(cluster, rpc_tracker, rpc_key)  # before the model is lowered: a typo costs no time

    if lowered is None:
        resolved, lowered = prepare(model, target, input_shapes, example_inputs)
    else:
        from woodpecker.targets import resolve

        resolved = resolve(target)
    profile = resolved.profile
    threads = resolved.threads
    device = resolved.device()
    # one set of options for the records' key and the measurer: a measurer passed in times with its own
    options = getattr(measurer, "options", None) or measure_options or MeasureOptions()
    tools = resolved.toolchain(options)
    own_db = not isinstance(db, RecordsDatabase)
    database = open_database(db if db is not None else default_db_path())
    assert database is not None
    lanes = resolved.lanes
    calls = lowered.occurrences()
    rl_policy = str(config.get().cache_dir / "rl" / f"policy-{profile.target_class}.npz")

    selected = [t for t in lowered.tasks.values()
                if only is None or t.key in only or t.name in only or t.family in only]
    states = [_open_task(task, database, resolved, device, tools, calls.get(task.key, 1), searcher, seed,
                         cost_model, {"policy_path": rl_policy, **(searcher_options or {})})
              for task in selected]
    if measurer is None and (cluster or rpc_tracker):
        from woodpecker.measure.remote import remote_measurer

        measurer = remote_measurer(cluster, rpc_tracker, rpc_key, resolved.tvm_target(), resolved.target_class,
                                   threads, build_workers, options, tools)
    if measurer is None:
        measurer = resolved.measurer(build_workers, options, tools)
    session = _Session(states, lowered, database, device, tools, measurer, trials, budget_s, batch_size, early_stop,
                       progress, hashlib.sha256(f"{now_iso()}:{seed}:{id(states)}".encode()).hexdigest()[:12])
    try:
        stopped = session.run()
    finally:
        measurer.close()
        if own_db:
            database.close()
    reports = tuple(
        TaskReport(s.task.name, s.task.family, s.task.key, s.calls, s.trials, s.previous + s.trials, s.failed,
                   s.default_us, s.best_us, (s.task.flops / (s.best_us * 1e3)) if s.best_us else None,
                   s.done or ("interrupted" if stopped == "interrupted" else "budget"), s.verified)
        for s in states
    )
    return TuneReport(reports, session.done_trials, time.monotonic() - session.t0, stopped, str(database.path),
                      device, session.default_trials)


def _open_task(task: Task, database: RecordsDatabase, target: Target, device: Device, tools: Mapping[str, str],
               calls: int, searcher: str, seed: int, cost_model: bool, options: Mapping[str, Any]) -> TaskState:
    """A task's state at the start of a session: its space, its records so far (best, default), its searcher."""
    from woodpecker.search.cost_model import CostModel

    database.commit_workload(task.key, task.family, task.name, task.flops, task.source)
    space = target.space(task)
    records = database.records(task.key, device, tools)
    history = [(dict(r.knobs), r.latency_us / 1e6) for r in records if r.ok]
    visited = {point_key(r.knobs) for r in records}
    model = CostModel(seed=seed) if cost_model else None
    if model is not None and history:
        model.update(space, [h[0] for h in history], [h[1] for h in history])
    ctx = SearchContext(space, _task_seed(seed, task.key), visited, history,
                        task_features(task, target.threads, target.lanes, device.simulated), model, options)
    state = TaskState(task, calls, space, create(searcher, ctx), model, previous=len(records), visited=visited)
    default_key = point_key(space.default)
    for r in records:
        if r.ok and (state.best_us is None or r.latency_us < state.best_us):
            state.best_us, state.best_knobs = r.latency_us, dict(r.knobs)
        if point_key(r.knobs) == default_key and r.ok:
            state.default_us = r.latency_us
    return state


class _Session:
    """One tuning session: every task's default schedule first (batched across tasks), then the searchers' batches,
    the task with the most to gain first, until the budget is spent or every task has converged. Each batch is
    written to the database as one transaction as soon as it is measured."""

    def __init__(self, states: list[TaskState], lowered: LoweredModel, database: RecordsDatabase, device: Device,
                 tools: Mapping[str, str], measurer: MeasurerLike, trials: int | None, budget_s: float | None,
                 batch_size: int, early_stop: int | None, progress: Callable[[Progress], None] | None,
                 session: str) -> None:
        self.states, self.lowered, self.database, self.device, self.tools = states, lowered, database, device, tools
        self.measurer, self.trials, self.budget_s, self.batch_size = measurer, trials, budget_s, batch_size
        self.early_stop, self.progress, self.session = early_stop, progress, session
        self.t0 = time.monotonic()
        self.done_trials = 0
        self.default_trials = 0  # of done_trials; said in the progress and the report, where they can surprise
        self.last = ""

    def run(self) -> str:
        """Measure until the budget is spent ("budget"), every task converged ("converged") or Ctrl-C."""
        from woodpecker.measure.reference import reference_io

        try:
            for state in self.states:
                node, call = self.lowered.example(state.task.key)
                inputs, expected = reference_io(state.task, node, self.lowered.graph, call.args)
                self.measurer.set_reference(state.task, inputs, expected)
            self._report()
            self._measure_defaults()
            stopped = self._search()
            self._verify()
            return stopped
        except KeyboardInterrupt:
            return "interrupted"

    def _batch(self) -> int:
        return self.batch_size if self.trials is None else min(self.batch_size, self.trials - self.done_trials)

    def _out_of_budget(self) -> bool:
        if self.trials is not None and self.done_trials >= self.trials:
            return True
        return self.budget_s is not None and time.monotonic() - self.t0 >= self.budget_s

    def _measure_defaults(self) -> None:
        """Every task's default schedule, batched across tasks: the baseline of each task's speedup and the
        latencies that weigh the tasks against each other."""
        pending = [s for s in self.states
                   if s.default_us is None and point_key(s.space.default) not in s.visited]
        while pending and not self._out_of_budget():
            chunk, pending = pending[: self._batch()], pending[self._batch():]
            for s in chunk:
                s.visited.add(point_key(s.space.default))  # the searcher must not propose it again
            results = self.measurer.measure_many([(s.task, dict(s.space.default)) for s in chunk])
            for s, r in zip(chunk, results, strict=True):
                self.last = s.task.name
                self._record(s, [dict(s.space.default)], [r], "default")
                s.searcher.observe([dict(s.space.default)], [r.cost])
            self._report()

    def _verify(self) -> None:
        """Each task's best record re-timed beside its default, in alternated pairs (default first, then best
        first, ...) in one batch for all tasks, the median of default / best kept as the best's verdict
        (records.select applies a tuned schedule only where its verdict shows a gain). Why: the search compares
        figures taken minutes apart, and on a shared VM a runner process's speed moves by 2x over that time (BERT's
        defaults, timed first, were 2x slower than the same schedules re-timed later), so the least of hundreds of
        figures is partly the fastest moment, not the fastest schedule: BERT's tuned kernels summed 1.38x faster
        than their defaults and the tuned model ran 0.97x. Not counted against the trial budget."""
        pending = []  # (state, default knobs, best knobs) of each task whose best is not its default
        for s in self.states:
            best = self.database.best(s.task.key, self.device, self.tools)
            default = dict(s.space.default)
            if best is not None and dict(best.knobs) != default:
                pending.append((s, default, dict(best.knobs)))
        if not pending:
            return
        # every task in one batch (one settling run for all); pair k default first when k is even, else best first
        items = [(s.task, p) for s, default, tuned in pending for k in range(VERIFY_PAIRS)
                 for p in ((default, tuned) if k % 2 == 0 else (tuned, default))]
        results = self.measurer.measure_many(items)
        for j, (s, _, tuned) in enumerate(pending):
            ratios = []
            for k in range(VERIFY_PAIRS):
                first, second = results[2 * (j * VERIFY_PAIRS + k)], results[2 * (j * VERIFY_PAIRS + k) + 1]
                d, t = (first, second) if k % 2 == 0 else (second, first)
                if d.ok and t.ok:
                    ratios.append(d.cost / t.cost)
            if not ratios:
                continue
            s.verified = statistics.median(ratios)
            self.database.add_verdict(s.task.key, self.device, self.tools, tuned, s.verified, len(ratios),
                                      self.session, now_iso())
            self.last = s.task.name
        self._report()

    def _search(self) -> str:
        while True:
            if self._out_of_budget():
                return "budget"
            active = [s for s in self.states if not s.done]
            if not active:
                return "converged"
            state = max(active, key=lambda s: s.priority())
            points = state.searcher.propose(self._batch())
            if not points:
                state.done = "exhausted"
                continue
            self.last = state.task.name
            results = self.measurer.measure(state.task, points)
            self._record(state, points, results, state.searcher.name)
            costs = [r.cost for r in results]
            state.searcher.observe(points, costs)
            if state.cost_model is not None:
                state.cost_model.update(state.space, points, costs)
            self._report()

    def _record(self, state: TaskState, points, results, searcher_name: str) -> None:
        if searcher_name == "default":
            self.default_trials += len(points)
        recs = [TuningRecord(state.task.key, self.device, self.tools, dict(p), r.run_secs, r.error, searcher_name,
                             now_iso(), self.session) for p, r in zip(points, results, strict=True)]
        self.database.add(recs)  # one transaction per batch
        self.done_trials += len(points)
        state.trials += len(points)
        improved = False
        for p, r in zip(points, results, strict=True):
            if not r.ok:
                state.failed += 1
                continue
            us = r.cost * 1e6
            if point_key(p) == point_key(state.space.default):
                state.default_us = us
            if state.best_us is None or us < state.best_us * (1 - IMPROVEMENT):
                improved = True
            if state.best_us is None or us < state.best_us:
                state.best_us, state.best_knobs = us, dict(p)
        state.since_improvement = 0 if improved else state.since_improvement + len(points)
        state.history_best.append(state.best_us if state.best_us is not None else math.inf)
        if self.early_stop and state.since_improvement >= self.early_stop:
            state.done = "converged"

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(Progress(tuple(self.states), self.done_trials, self.trials, time.monotonic() - self.t0,
                                   self.budget_s, self.last, self.default_trials))
