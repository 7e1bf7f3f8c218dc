"""Per-call planning of a CPU model in a fresh process whose runtimes wait passively, and the switch-aware choice.

Why a fresh process: every runtime keeps its worker threads spinning after a call (TVM's pool, PyTorch's OpenMP
workers), and on a 2-core machine whatever runs next shares its cores with them. Timed in the compiling process,
woodpecker's kernels after a vendor block read up to 8x slower than in their own program (one call 3846 us against
449 us), so the planner gave the vendors calls they lose. The wait policies are read once, when a runtime loads
(libgomp at load, TVM's pool at its first launch), and torch is usually loaded already (tvm_ffi imports it), so
they can only be set in a process that has loaded nothing: the compiled model is saved, and the planning runs in
a woodpecker.measure.child process started with PASSIVE_WAITS, the same policies a planned model runs with.

The choice charges the switch: the cost of entering and leaving a vendor library between two generated kernels is
measured in the same process (`switch_costs_us`), and the plan is the cheapest path through the calls (Viterbi:
each call's time under each library, plus a switch wherever consecutive calls change library), so a vendor call
is taken only where its gain pays for the switches it causes, and runs of calls stay in one library.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.config import PASSIVE_WAITS
from woodpecker.planner.plan import TIE, RegionDecision, decide



@dataclasses.dataclass(frozen=True)
class PerCallPlan:
    decisions: tuple[RegionDecision, ...]  # `chosen` is the switch-aware choice, checked in context
    switch_us: Mapping[str, float]  # measured cost of one switch between woodpecker's kernels and each vendor
    alone_chosen: tuple[str, ...]  # what each call would pick timed alone (before switches were charged)
    # each call of the mix kept, timed in model order (us), and the same calls of woodpecker's own program
    context_us: tuple[float, ...] = ()
    own_context_us: tuple[float, ...] = ()
    # per library that merges runs: how much less a call costs inside a merged run than alone (us)
    merged_saving_us: Mapping[str, float] = dataclasses.field(default_factory=dict)
    # every mix run in model order: (vendor calls, vendor sessions, ms), the own program first
    mixes_tried: tuple[tuple[int, int, float], ...] = ()


def loop_s(calls: Sequence[Callable[[], None]], reps: int) -> float:
    """Seconds per pass of `calls` run in turn, `reps` passes after one untimed pass."""
    for c in calls:
        c()
    t0 = time.perf_counter()
    for _ in range(reps):
        for c in calls:
            c()
    return (time.perf_counter() - t0) / reps


def switch_costs_us(ours: Callable[[], None], vendors: Mapping[str, Callable[[], None]], reps: int = 60,
                    rounds: int = 5) -> dict[str, float]:
    """Added latency of one switch between a generated kernel and each vendor call: the median time of the pair
    (ours, vendor) in alternation, less the two calls' times in runs of their own, halved (two switches a pair)."""

    def loop(calls: Sequence[Callable[[], None]]) -> float:
        return loop_s(calls, reps)

    out = {}
    for name, theirs in vendors.items():
        extra = []
        for _ in range(rounds):
            alone = loop([ours]) + loop([theirs])
            extra.append((loop([ours, theirs]) - alone) / 2)
        out[name] = max(0.0, statistics.median(extra) * 1e6)
    return out


MERGE_PROBE_CALLS = 6  # calls in the merged run that measures the saving


def merged_saving(ex, program, regions, decisions: Sequence[RegionDecision], constants: Mapping[str, np.ndarray],
                  threads: int, rounds: int) -> dict[str, float]:
    """Per call, what onnxruntime costs less inside a merged session than in a session of its own (us): the first
    run of up to MERGE_PROBE_CALLS consecutive calls it can run as one group is timed as one session and call by
    call, interleaved; the saving is the difference over the calls it spares. Why measured: it is the session's
    per-run overhead (binding, waking its workers, which are not left spinning in a planned model), which the
    block time of every call includes and which decides whether a run of onnxruntime calls pays."""
    from woodpecker.measure.interleaved import time_interleaved
    from woodpecker.planner.merge import call_groups, merge_regions
    from woodpecker.runtime.vendors import make_vendor

    lib = "onnxruntime"
    ok = [any(r.name == lib and r.median_us is not None and r.error is None for r in d.results) for d in decisions]
    chosen = [lib if good else "woodpecker" for good in ok]
    groups = [g[:MERGE_PROBE_CALLS] for g in call_groups(program, chosen) if chosen[g[0]] == lib and len(g) > 1]
    group = max(groups, key=len, default=())
    if len(group) < 2:
        return {}
    members = [regions[i] for i in group]
    runs = {}
    try:
        for key, region in [("merged", merge_regions(members)), *((str(i), regions[i]) for i in group)]:
            impl = make_vendor(lib, region, constants, threads)
            out_t = region.types[region.output]
            runs[key] = impl.bind([ex.view(v, region.types[v].shape) for v in region.inputs],
                                  ex.scratch(out_t.shape, out_t.dtype))
        times = time_interleaved(runs, rounds)
    except Exception:  # noqa: BLE001 - no figure: runs are then charged call by call, as before
        return {}
    spared = sum(t for k, t in times.items() if k != "merged") - times["merged"]
    return {lib: max(0.0, spared / (len(group) - 1) * 1e6)}


def cheapest_path(decisions: Sequence[RegionDecision], switch_us: Mapping[str, float],
                  merged_saving_us: Mapping[str, float] | None = None,
                  in_context: Collection[tuple[int, str]] = (),
                  continues: Sequence[bool] | None = None) -> list[str]:
    """The library of each call minimising the sum of call times and switch costs (Viterbi over the calls).

    The model starts and ends in woodpecker's executor; a change between two vendors costs the mean of their two
    switch costs. A vendor's time carries the tie margin, so woodpecker's kernel keeps near-ties.
    `merged_saving_us`: what a call of a library that merges runs (woodpecker.planner.merge) costs less when it
    follows a call of the same library in one session (measured: `merged_saving`); never below a tenth of its time.
    Not for the (call, library) pairs in `in_context`: their figures were measured in the merged run; nor where
    `continues[i]` is False (merge.continues_run: the run is cut before call i)."""
    saving = merged_saving_us or {}

    def switch(a: str, b: str) -> float:
        if a == b:
            return 0.0
        return (switch_us.get(a, 0.0) + switch_us.get(b, 0.0)) / (2 if "woodpecker" not in (a, b) else 1)

    best: dict[str, tuple[float, list[str]]] = {"woodpecker": (0.0, [])}
    for i, d in enumerate(decisions):
        times = {r.name: r.median_us * (1 if r.name == "woodpecker" else 1 + TIE)
                 for r in d.results if r.median_us is not None and r.error is None}
        step: dict[str, tuple[float, list[str]]] = {}
        for lib, t in times.items():
            def cost_after(prev: str, lib: str = lib, t: float = t) -> float:
                if prev == lib and lib in saving and (i, lib) not in in_context and \
                        (continues is None or continues[i]):
                    return max(t - saving[lib], t / 10)
                return switch(prev, lib) + t

            prev, (cost, path) = min(((p, v) for p, v in best.items()), key=lambda pv: pv[1][0] + cost_after(pv[0]))
            step[lib] = (cost + cost_after(prev), path + [lib])
        best = step
    _, (_, path) = min(best.items(), key=lambda kv: kv[1][0] + switch(kv[0], "woodpecker"))
    return path


def plan_calls_main(conn, artifact: str, region_jsons: Sequence[Mapping[str, Any]],
                    constants: Mapping[str, np.ndarray], kernel_names: Sequence[str], vendors: Sequence[str],
                    threads: int, rounds: int) -> None:
    """The planning child's entry: ("progress", text) messages, then ("done", PerCallPlan) or ("error", line)."""
    from woodpecker.measure.pool import describe_error

    try:
        plan = plan_calls(artifact, region_jsons, constants, kernel_names, vendors, threads, rounds,
                          progress=lambda msg: conn.send(("progress", msg)))
        conn.send(("done", plan))
    except Exception as err:  # noqa: BLE001 - the parent reports it and ships a build without the per-call mix
        conn.send(("error", describe_error(err)))


def plan_calls(artifact: str, region_jsons: Sequence[Mapping[str, Any]], constants: Mapping[str, np.ndarray],
               kernel_names: Sequence[str], vendors: Sequence[str], threads: int, rounds: int,
               progress: Callable[[str], None] = lambda msg: None) -> PerCallPlan:
    """Load the saved model, run it on the planning inputs, time every call's choices in place, measure the switch
    costs, and choose."""
    from woodpecker.runtime.load import load_artifact
    from woodpecker.planner.merge import continues_run
    from woodpecker.planner.plan import plan_regions
    from woodpecker.planner.regions import Region
    from woodpecker.runtime.executor import profile_calls

    cm = load_artifact(artifact)
    ex = cm.executor
    ex.set_inputs(cm.random_inputs(0))
    ex.execute()
    regions = [Region.from_json(r) for r in region_jsons]
    # woodpecker's calls as they run in its own program, timed before any vendor has run in this process (a vendor
    # leaves workers behind: numpy's OpenBLAS threads spin after a call, and own calls timed after the dense
    # layer's numpy choice read 6.9 ms for a 3.7 ms model)
    own = [t * 1e6 for _, t in profile_calls(cm.program, ex._calls, CONTEXT_REPEAT)]
    # each library's shortest correct call: the switch costs are differences of times, best measured on short calls
    shortest: dict[str, tuple[float, Callable[[], None]]] = {}

    def keep(name: str, run: Callable[[], None], median_s: float) -> None:
        if name not in shortest or median_s < shortest[name][0]:
            shortest[name] = (median_s, run)

    decisions = plan_regions(ex, regions, constants, kernel_names, vendors, threads, rounds, on_timed=keep,
                             progress=progress)
    progress("planning: measuring the cost of switching runtimes")
    ours = shortest["woodpecker"][1]
    switch = switch_costs_us(ours, {k: run for k, (_, run) in shortest.items() if k != "woodpecker"})
    # woodpecker's calls count as they run in its own program from the start: timed in blocks here, after the
    # vendors' sessions were built, they read up to 4 ms for 45 us calls (README of benchmarks/results/planner)
    decisions = _with_context(decisions, {(i, "woodpecker"): t for i, t in enumerate(own)})
    alone = tuple(decide(d.results) for d in decisions)
    progress("planning: measuring what merging onnxruntime calls into one session saves")
    saving = merged_saving(ex, cm.program, regions, decisions, constants, threads, rounds)
    continues = continues_run(cm.program)
    path = cheapest_path(decisions, switch, saving, continues=continues)
    progress("planning: timing the mix in model order")
    path, context, decisions, tried = _check_in_context(cm, regions, constants, threads, decisions, path, own,
                                                        saving, progress, continues)
    chosen = tuple(dataclasses.replace(d, chosen=lib) for d, lib in zip(decisions, path))
    return PerCallPlan(chosen, switch, alone, tuple(context), tuple(own), saving, tuple(tried))


CONTEXT_REPEAT = 30  # model-order passes when a mix is checked in context
CONTEXT_ROUNDS = 3  # re-plans with in-context figures before the mix is taken as it is


def _check_in_context(cm, regions, constants, threads: int, decisions: Sequence[RegionDecision],
                      path: list[str], own: Sequence[float], saving: Mapping[str, float] | None = None,
                      progress: Callable[[str], None] = lambda msg: None, continues: Sequence[bool] | None = None,
                      ) -> tuple[list[str], list[float], list[RegionDecision], list[tuple[int, int, float]]]:
    """Time the chosen mix as it runs, call after call in model order, and re-plan with what each vendor call
    really costs there.

    Why: a call timed in blocks of itself does not pay what the model pays around it: a vendor's threads asleep
    since its last call, the caches the previous runtime left, and the next generated kernel's slower start. On
    SqueezeNet the blocks (and the switch costs measured on the shortest calls) chose 13 vendor calls, and the mix
    ran in 6.9 ms against 3.9 ms for woodpecker's own program. In context, a vendor call costs its time in model
    order plus what the generated call after it loses against the own program; the plan is re-chosen with those
    figures (no separate switch charge: they include it), until the re-plan repeats a mix; of the mixes run (and
    the own program) the one with the least total in model order is kept.
    `own`: woodpecker's calls in model order in its own program (us), which stand for woodpecker's choices.
    Returns the path, its in-order times, the decisions with the figures the path was chosen on (woodpecker's
    in-order times, vendors' in-context times where measured, block times elsewhere), and (vendor calls, vendor
    sessions, ms in model order) of every mix run, the own program first."""
    from woodpecker.planner.plan import planned_program
    from woodpecker.runtime.executor import Executor, profile_calls

    feed = cm.random_inputs(0)
    all_constants = {**constants, **cm.constants}
    # (call, library) -> us in model order, switches included; woodpecker's kernels as they run in its own program
    in_context: dict[tuple[int, str], float] = {(i, "woodpecker"): t for i, t in enumerate(own)}
    # every mix run in model order: its total (us) and each call's share; the own program is one of them
    tried: dict[tuple[str, ...], tuple[float, list[float]]] = {("woodpecker",) * len(path): (sum(own), list(own))}
    shape: dict[tuple[str, ...], tuple[int, int]] = {("woodpecker",) * len(path): (0, 0)}  # vendor calls, sessions
    for _ in range(CONTEXT_ROUNDS):
        if tuple(path) in tried:  # the re-plan chose a mix already run (or none): nothing new to learn
            break
        trial = [dataclasses.replace(d, chosen=lib) for d, lib in zip(decisions, path)]
        program, vendor_regions, groups = planned_program(cm.program, regions, trial)
        ex = Executor(cm.library, program, all_constants, vendor_regions, threads)
        ex.set_inputs(feed)
        ex.execute()
        planned_us = [t * 1e6 for _, t in profile_calls(program, ex._calls, CONTEXT_REPEAT)]
        context = _per_call(planned_us, groups, path, decisions)
        tried[tuple(path)] = (sum(planned_us), context)
        shape[tuple(path)] = (sum(lib != "woodpecker" for lib in path), sum(c.vendor != "" for c in program.calls))
        progress(f"planning: a mix of {sum(lib != 'woodpecker' for lib in path)} vendor calls in "
                 f"{sum(c.vendor != '' for c in program.calls)} sessions ran in {sum(planned_us) / 1e3:.2f} ms in "
                 f"model order (woodpecker's own calls: {sum(own) / 1e3:.2f} ms)")
        for i, lib in enumerate(path):
            if lib == "woodpecker":
                continue
            lost_next = context[i + 1] - own[i + 1] if i + 1 < len(path) and path[i + 1] == "woodpecker" else 0.0
            in_context[(i, lib)] = context[i] + max(0.0, lost_next)
        path = cheapest_path(_with_context(decisions, in_context), {}, saving, in_context, continues)
    # the mix that ran fastest in model order: a re-planned path that was never run is not taken (a run cut in two
    # pays a second session its share of the merged one did not show)
    best = min(tried, key=lambda p: tried[p][0])
    summary = [(*shape[p], total / 1e3) for p, (total, _) in tried.items()]
    path, context = list(best), tried[best][1]
    return path, context, _with_context(decisions, in_context), summary


def _per_call(planned_us: Sequence[float], groups: Sequence[tuple[int, ...]], path: Sequence[str],
              decisions: Sequence[RegionDecision]) -> list[float]:
    """Each original call's share of the planned calls' in-order times: a merged run's time is split over its
    calls in proportion to their block times in that library (their only separate figures)."""
    out: list[float] = []
    for t, group in zip(planned_us, groups, strict=True):
        if len(group) == 1:
            out.append(t)
            continue
        lib = path[group[0]]
        block = [next((r.median_us for r in decisions[i].results if r.name == lib and r.median_us), 0.0) or 0.0
                 for i in group]
        total = sum(block)
        out.extend(t * (b / total if total > 0 else 1 / len(group)) for b in block)
    return out


def _with_context(decisions: Sequence[RegionDecision], in_context: Mapping[tuple[int, str], float]):
    """The decisions with each vendor time replaced by its in-context figure where one was measured."""
    from woodpecker.planner.plan import ChoiceResult

    out = []
    for i, d in enumerate(decisions):
        results = tuple(ChoiceResult(r.name, in_context[(i, r.name)], r.error) if (i, r.name) in in_context else r
                        for r in d.results)
        out.append(dataclasses.replace(d, results=results))
    return out
