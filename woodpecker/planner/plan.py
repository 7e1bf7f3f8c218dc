"""Planning: every kernel call is timed in place against its vendor implementations; the fastest correct one wins.

    executor <- the model with woodpecker's kernels; run once on seeded inputs (fills every buffer with real data)
    for each call, in order:
        choices <- woodpecker's kernel, onnxruntime (the region exported to ONNX, I/O bound onto the arena),
                   torch (oneDNN/MKL on tensors sharing the arena), numpy (dense/matmul only: BLAS)
        each choice runs once on the call's real input buffers and is checked against the numpy reference of
        the region (max |out - ref| / max |ref| <= 1e-3); a wrong or failing choice is dropped, with its reason
        the survivors are timed interleaved: rounds in which each runs a block (one untimed run that absorbs the
        spinning tail of the previous runtime's worker threads, then timed runs back to back), median of all
        the fastest wins; woodpecker's kernel keeps ties within 3 % (no churn on noise)
    the planned model is then timed against the all-woodpecker model and onnxruntime running the whole model,
    interleaved; the fastest of the three is the plan (a whole-model vendor plan is reported as such)

The decisions and every choice's time go into the artifact; loading replays them without timing anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.measure.interleaved import time_interleaved
from woodpecker.measure.correctness import RTOL, relative_error
from woodpecker.planner.choices import GeneratedChoice, reference_output
from woodpecker.runtime.vendors import VENDORS, make_vendor
from woodpecker.runtime.vendors.export_onnx import NotExportable
from woodpecker.planner.merge import call_groups, merge_regions
from woodpecker.planner.regions import Region
from woodpecker.runtime.executor import CallSpec, Program

TIE = 0.03


@dataclasses.dataclass(frozen=True)
class ChoiceResult:
    name: str
    median_us: float | None  # None when the choice was not timed
    error: str | None = None  # why it was dropped

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "median_us": self.median_us, "error": self.error}


@dataclasses.dataclass(frozen=True)
class RegionDecision:
    index: int
    node: str
    kernel: str
    chosen: str
    results: tuple[ChoiceResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "node": self.node, "kernel": self.kernel, "chosen": self.chosen,
                "results": [r.to_json() for r in self.results]}


def decide(results: Sequence[ChoiceResult]) -> str:
    timed = [r for r in results if r.median_us is not None and r.error is None]
    best = min(timed, key=lambda r: r.median_us)  # type: ignore[arg-type, return-value]
    ours = next((r for r in timed if r.name == "woodpecker"), None)
    if ours is not None and ours.median_us <= best.median_us * (1 + TIE):  # type: ignore[operator]
        return "woodpecker"
    return best.name


def plan_regions(executor, regions: Sequence[Region], constants: Mapping[str, np.ndarray], kernel_names: Sequence[str],
                 vendors: Sequence[str] = VENDORS, threads: int = 1, rounds: int = 20,
                 make: Callable = make_vendor, timer: Callable = None,
                 on_timed: Callable[[str, Callable[[], None], float], None] | None = None,
                 progress: Callable[[str], None] = lambda msg: None) -> list[RegionDecision]:
    """Decide every call. `executor` holds the all-woodpecker program with its inputs set and executed once: the
    host Executor (numpy views of its arena) or a DeviceExecutor (device tensors; each timed run ends with a
    device sync, so a run's time is its work, not its launch).

    `make(kind, region, constants, threads)` builds a vendor choice and `timer(runs, rounds)` times the correct
    ones (seconds by name); tests replace them to control speed and correctness. `on_timed(name, run, seconds)`
    sees every timed run, bound to its buffers (the switch-cost measurement reuses them)."""
    timer = timer or time_interleaved
    sync = executor.sync
    decisions = []
    for region, kernel, (func, tvm_args) in zip(regions, kernel_names, executor._calls):
        progress(f"planning: call {len(decisions) + 1}/{len(regions)} ({kernel})")
        ins = [executor.view(v, region.types[v].shape) for v in region.inputs]
        out_t = region.types[region.output]
        out = executor.view(region.output, out_t.shape)
        ref = reference_output(region, [executor.to_host(x) for x in ins], constants)
        results: list[ChoiceResult] = []
        runs: dict[str, Callable[[], None]] = {}
        outputs: dict[str, np.ndarray] = {}
        candidates: list[tuple[str, Any]] = [("woodpecker", GeneratedChoice(func, tvm_args))]
        for kind in vendors:
            try:
                candidates.append((kind, make(kind, region, constants, threads)))
            except NotExportable as err:
                results.append(ChoiceResult(kind, None, f"not available: {err}"))
            except Exception as err:  # noqa: BLE001 - a vendor that cannot load the region is simply not a choice
                results.append(ChoiceResult(kind, None, f"failed to build: {type(err).__name__}: {str(err).splitlines()[0]}"))
        for name, choice in candidates:
            target = out if name == "woodpecker" else executor.scratch(out_t.shape, out_t.dtype)
            try:
                run = choice.bind(ins, target)
                run()
                sync()
                got = executor.to_host(target)
            except Exception as err:  # noqa: BLE001
                results.append(ChoiceResult(name, None, f"failed to run: {type(err).__name__}: {str(err).splitlines()[0]}"))
                continue
            err = relative_error(got, np.asarray(ref).reshape(out_t.shape))
            if not err <= RTOL:
                results.append(ChoiceResult(name, None, f"wrong result: max relative error {err:.3g}"))
                continue
            runs[name] = _synced(run, sync) if executor.on_device else run
            outputs[name] = target
        if "woodpecker" not in runs and not runs:
            raise RuntimeError(f"no implementation of {region.node} matches its reference")
        times = timer(runs, rounds)
        if on_timed is not None:
            for name, t in times.items():
                on_timed(name, runs[name], t)
        results.extend(ChoiceResult(name, t * 1e6) for name, t in times.items())
        order = {n: i for i, n in enumerate(["woodpecker", *vendors])}
        results.sort(key=lambda r: order.get(r.name, 99))
        decisions.append(RegionDecision(region.index, region.node, kernel, decide(results), tuple(results)))
    return decisions


def _synced(run: Callable[[], None], sync: Callable[[], None]) -> Callable[[], None]:
    def run_and_wait() -> None:
        run()
        sync()

    return run_and_wait


def planned_program(program: Program, regions: Sequence[Region], decisions: Sequence[RegionDecision],
                    ) -> tuple[Program, dict[str, Region], list[tuple[int, ...]]]:
    """The program with the vendor decisions applied, the region of each vendor call by call name, and the
    original calls each planned call runs.

    Consecutive onnxruntime calls become one call of one session where their inner values stay inside the run
    (woodpecker.planner.merge.call_groups); the other calls of the run are dropped."""
    chosen = [d.chosen for d in decisions]
    calls = []
    vendor_regions: dict[str, Region] = {}
    placed: list[int] = []  # per original call: the index of the planned call that runs it
    groups = call_groups(program, chosen)
    for group in groups:
        first, lib = group[0], chosen[group[0]]
        placed.extend(len(calls) for _ in group)
        if lib == "woodpecker":
            calls.append(program.calls[first])
            continue
        region = merge_regions([regions[i] for i in group]) if len(group) > 1 else regions[first]
        name = f"vendor_{region.index}_{lib}" + (f"_to_{group[-1]}" if len(group) > 1 else "")
        args = tuple((v, region.types[v].shape) for v in region.inputs) + \
            ((region.output, region.types[region.output].shape),)
        calls.append(CallSpec(name, args, lib))
        vendor_regions[name] = region
    # a view step is the number of calls before it: one made inside a merged run is made before the merged call
    placed.append(len(calls))
    view_steps = tuple(placed[step] for step in program.view_steps)
    # values made and read inside a merged run are never written now: they take no storage
    inner = {program.calls[i].args[-1][0] for group in groups for i in group[:-1]}
    values = {k: v for k, v in program.values.items() if k not in inner}
    return (dataclasses.replace(program, calls=tuple(calls), view_steps=view_steps, values=values), vendor_regions,
            groups)
