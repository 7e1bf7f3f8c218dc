"""plan_model: CompiledModel with woodpecker's kernels -> CompiledModel with the fastest implementation per call.

See woodpecker.planner.plan for the per-call procedure and woodpecker.planner.percall for where it runs (a fresh
process with passive wait policies) and how switches are charged. The model-level comparison guards the whole:
each whole build is timed in fresh processes and woodpecker.measure.decision keeps woodpecker's own build unless
the planned mix or onnxruntime is faster beyond the spread; the artifact records every figure either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from woodpecker.measure.decision import ProcessSamples, choose
from woodpecker.measure.correctness import RTOL, relative_error
from woodpecker.runtime.vendors import VENDORS, make_device_vendor, ort_session
from woodpecker.config import PASSIVE_WAITS
from woodpecker.planner.percall import plan_calls_main
from woodpecker.measure.interleaved import time_interleaved
from woodpecker.planner.plan import plan_regions, planned_program
from woodpecker.planner.regions import regions_of
from woodpecker.runtime.compiled import CompiledModel

MODEL_ROUNDS = 12
PLAN_TIMEOUT_S = 3600.0  # the per-call planning of a large model (every call against every vendor) in its child


def planning_inputs(cm: CompiledModel, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs: normal floats; integers 0 or 1 (valid indices for any embedding table)."""
    return cm.random_inputs(seed)


def plan_model(cm: CompiledModel, lowered, model_onnx: bytes | None, vendors: Sequence[str] = VENDORS,
               threads: int = 1, rounds: int = 20, processes: int | None = None,
               progress: Callable[[str], None] = lambda msg: None) -> CompiledModel:
    """The fastest plan of a compiled model: a CPU model (host Executor) or a GPU model (DeviceExecutor, whose
    vendor is PyTorch on the device: `vendors` = choices.DEVICE_VENDORS, `model_onnx` None).

    `processes`: fresh processes per whole-model contender (default: config.plan_processes)."""
    feed = planning_inputs(cm)
    ex = cm.executor
    on_device = ex.on_device
    ex.set_inputs(feed)
    ex.execute()
    ex.sync()
    reference = ex.get_outputs()
    regions = regions_of(lowered)
    # all of the graph's constants: a region may read scalars that its generated kernel inlined as literals
    graph_constants = lowered.graph.constants
    metadata = dict(cm.metadata)
    plan_info: dict = {"vendors": list(vendors)}
    progress(f"planning: timing {len(regions)} calls against {', '.join(vendors)}")
    if on_device:
        def make(kind, region, constants, _threads):  # the device's vendors instead of the host's
            return make_device_vendor(kind, region, constants, ex.torch_device)

        decisions = plan_regions(ex, regions, graph_constants, [c.func for c in cm.program.calls], vendors,
                                 threads, rounds, make=make, progress=progress)
    else:
        per_call = _plan_calls_apart(cm, regions, graph_constants, vendors, threads, rounds, progress)
        if isinstance(per_call, str):  # the planning process failed: no per-call mix, the whole builds still compete
            decisions, plan_info["per_call_error"] = [], per_call
        else:
            decisions = list(per_call.decisions)
            plan_info["switch_us"] = dict(per_call.switch_us)
            plan_info["chosen_alone"] = list(per_call.alone_chosen)
            plan_info["merged_saving_us"] = dict(per_call.merged_saving_us)
            plan_info["mixes_tried"] = [{"vendor_calls": n, "sessions": k, "in_order_ms": ms}
                                        for n, k, ms in per_call.mixes_tried]
            if per_call.context_us:  # the mix kept, call after call in model order, against the own program
                plan_info["in_order_ms"] = {"kept_mix": sum(per_call.context_us) / 1e3,
                                            "woodpecker": sum(per_call.own_context_us) / 1e3}
            plan_info["per_call_timing"] = "fresh process, passive wait policies (" + \
                ", ".join(f"{k}={v}" for k, v in PASSIVE_WAITS) + "), switch costs charged, the mix re-planned " \
                "with its calls timed in model order"
    program, vendor_regions = cm.program, {}
    if decisions:
        program, vendor_regions, groups = planned_program(cm.program, regions, decisions)
        # the original calls each call of the mix runs (several for a merged onnxruntime session)
        plan_info["planned_calls"] = [list(g) for g in groups]

    def variant(prog, vregions, onnx_bytes=None, chosen: str = "") -> CompiledModel:
        constants = dict(cm.constants)
        for region in vregions.values():
            constants.update({k: graph_constants[k] for k in region.constant_names})
        md = {**metadata, "plan": {"model": {"chosen": chosen}}} if chosen else metadata
        return cm.with_plan(prog, constants, md, vregions, onnx_bytes)

    candidates = {"woodpecker": variant(cm.program, {}, chosen="woodpecker")}
    rejected = ""
    if vendor_regions:
        planned = variant(program, vendor_regions, chosen="planned")
        outs = planned.run(feed)
        for name, ref in reference.items():
            err = relative_error(outs[name], ref)
            if not err <= RTOL:  # every call was checked alone; this guards the composition
                rejected = f"planned model output {name} differs from the generated model ({err:.2e})"
                break
        if not rejected:
            candidates["planned"] = planned
    if model_onnx is not None and "onnxruntime" in vendors:
        try:
            session = ort_session(model_onnx, threads)
            ort_out = session.run(None, {t.name: np.asarray(feed[t.name]) for t in cm.program.inputs})
        except Exception as err:  # noqa: BLE001 (onnxruntime's own errors have no common class)
            # onnxruntime has no kernel for some element types (bfloat16 Add) and takes no bfloat16 arrays
            plan_info["onnxruntime_error"] = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        else:
            if all(relative_error(out, reference[spec.name]) <= RTOL
                   for spec, out in zip(cm.program.outputs, ort_out)):
                candidates["onnxruntime"] = variant(cm.program, {}, model_onnx, chosen="onnxruntime")
            del session  # onnxruntime disagreeing with the reference is never chosen
    samples, method = _time_builds(candidates, feed, threads, on_device, processes, progress)
    decision = choose(samples)
    plan_info["calls"] = [d.to_json() for d in decisions]
    plan_info["model"] = {"times_ms": {k: s.median_ms for k, s in samples.items()},
                          "process_ms": {k: list(s.process_ms) for k, s in samples.items()},
                          "chosen": decision.chosen, "reason": decision.reason,
                          "within_noise": decision.within_noise, "timing": method}
    if rejected:
        plan_info["model"]["rejected"] = rejected
    if on_device:  # the device the choices were timed on, which need not be the profile's
        plan_info["timed_on"] = _device_name(ex.device)
    metadata["plan"] = plan_info
    if decision.chosen == "planned":
        shipped = variant(program, vendor_regions)
    elif decision.chosen == "onnxruntime":
        shipped = variant(cm.program, {}, model_onnx)
    else:
        shipped = variant(cm.program, {})
    # in memory only (not saved): the builds that competed, for benchmarks that time them again
    shipped.plan_candidates = candidates
    return shipped


def _plan_calls_apart(cm: CompiledModel, regions, constants, vendors, threads: int, rounds: int,
                      progress: Callable[[str], None]):
    """PerCallPlan from a fresh process with passive wait policies (see woodpecker.planner.percall), or the one-line
    reason it failed (crashed, hung past PLAN_TIMEOUT_S)."""
    import os
    import tempfile
    import time

    from woodpecker.measure.child import CONTEXT
    from woodpecker.measure.pool import describe_exit

    with tempfile.TemporaryDirectory(prefix="woodpecker-plan-") as work:
        path = os.path.join(work, "model.wpk")
        cm.save(path)
        env = {**dict(PASSIVE_WAITS), "TVM_NUM_THREADS": str(threads)}
        conn, child = CONTEXT.Pipe()
        proc = CONTEXT.Process(plan_calls_main, (child, path, [r.to_json() for r in regions], dict(constants),
                                                 [c.func for c in cm.program.calls], tuple(vendors), threads, rounds),
                               env=env)
        proc.start()
        child.close()
        deadline = time.monotonic() + PLAN_TIMEOUT_S
        try:
            while True:
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    return f"per-call planning hung (no answer within {PLAN_TIMEOUT_S:.0f} s)"
                kind, value = conn.recv()
                if kind == "progress":
                    progress(value)
                    continue
                return value if kind == "done" else f"per-call planning failed: {value}"
        except (EOFError, OSError):
            proc.join(5)
            return f"per-call planning failed: {describe_exit(proc.exitcode)}"
        finally:
            conn.close()
            proc.join(5)
            proc.kill()


def _device_name(device) -> str:
    try:
        name = device.device_name  # "NVIDIA H200", for a CUDA device
    except Exception:  # noqa: BLE001 - not every device type reports a name
        name = None
    return f"{name} ({device})" if name else str(device)


def _time_builds(candidates: Mapping[str, CompiledModel], feed: Mapping[str, np.ndarray], threads: int,
                 on_device: bool, processes: int | None,
                 progress: Callable[[str], None] = lambda msg: None) -> tuple[dict[str, ProcessSamples], str]:
    """Per-process samples of each whole-model candidate, and how they were taken.

    CPU: each candidate saved and timed in fresh processes, as it will be deployed (woodpecker.measure.isolated;
    loading the planned build sets the wait policies it runs with, woodpecker.runtime.artifact). In one process the runtimes' spinning worker
    threads slow whichever runs next: MobileNetV2's generated model timed 8.2 ms there and 4.5 ms alone.
    GPU: in one process, interleaved by blocks (a device's runtimes keep no spinning CPU workers, and a planned GPU
    model runs TVM's and torch's kernels in one process anyway); one sample each."""
    import os
    import tempfile

    from woodpecker import config
    from woodpecker.measure.isolated import Recipe, time_isolated

    if on_device:
        runs = {name: m.runner(feed) for name, m in candidates.items()}
        times = time_interleaved(runs, MODEL_ROUNDS, warmup=2)
        return ({k: ProcessSamples(k, (t * 1e3,)) for k, t in times.items()},
                "in process, interleaved by blocks, device synchronized")
    n = processes or config.get().plan_processes
    with tempfile.TemporaryDirectory(prefix="woodpecker-plan-") as work:
        recipes = []
        for name, model in candidates.items():
            path = os.path.join(work, f"{name}.wpk")
            model.save(path)
            recipes.append(Recipe(name, "artifact", path))
        timings = time_isolated(recipes, feed, threads, rounds=n, per_round=6, warmup=3,
                                progress=lambda msg: progress(f"whole builds: {msg}"))
    samples = {t.name: t.samples for t in timings if t.error is None and t.samples is not None}
    if "woodpecker" not in samples:
        failed = next(t.error for t in timings if t.name == "woodpecker")
        raise RuntimeError(f"woodpecker's own build could not be timed: {failed}")
    return samples, f"{n} fresh processes per build (6 timed runs each), median of per-process medians"
