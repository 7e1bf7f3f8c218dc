"""The plan in words: what ships, its time against onnxruntime with the spread, and why the others lost.

    shipping woodpecker's kernels: 39.0 ms (38.1-40.2) vs onnxruntime 40.9 ms (39.5-44.0): 1.05x, within noise
    per call: 52 woodpecker, 3 onnxruntime; the mix (43.8 ms) lost: ...

Read from an artifact's plan metadata only, so `woodpecker compile` and anyone holding a CompiledModel print the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from woodpecker.measure.decision import ProcessSamples, ratio_line

LABELS = {"woodpecker": "woodpecker's kernels", "planned": "the per-call mix", "onnxruntime": "onnxruntime"}


def plan_lines(plan: Mapping[str, Any] | None) -> list[str]:
    if not plan:
        return []
    if "skipped" in plan:
        return [f"plan: none ({plan['skipped']})"]
    model = plan["model"]
    per_process = model.get("process_ms") or {k: [v] for k, v in model["times_ms"].items()}
    samples = {k: ProcessSamples(k, tuple(v)) for k, v in per_process.items()}
    chosen = model["chosen"]
    # against onnxruntime; when onnxruntime ships, against woodpecker's own kernels
    other = "onnxruntime" if chosen != "onnxruntime" else "woodpecker"
    baseline = samples.get(other)
    lines = [ratio_line(samples[chosen], baseline, LABELS.get(chosen, chosen), LABELS.get(other, other))]
    if model.get("reason"):
        lines[0] += f" ({model['reason']})"
    lines.append(_per_call_line(plan, samples, chosen))
    if model.get("rejected"):
        lines.append(f"the per-call mix was dropped: {model['rejected']}")
    return [line for line in lines if line]


def _per_call_line(plan: Mapping[str, Any], samples: Mapping[str, ProcessSamples], chosen: str) -> str:
    if plan.get("per_call_error"):
        return f"per call: not planned ({plan['per_call_error']})"
    calls = plan.get("calls") or []
    counts: dict[str, int] = {}
    for c in calls:
        counts[c["chosen"]] = counts.get(c["chosen"], 0) + 1
    line = "per call: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    switch = plan.get("switch_us") or {}
    switch_text = ", ".join(f"{k} {v:.0f} us" for k, v in switch.items())
    alone = plan.get("chosen_alone") or []
    taken_alone = sum(1 for a in alone if a != "woodpecker")
    if set(counts) <= {"woodpecker"}:
        why = "no vendor call pays for its switches" if taken_alone else "woodpecker's kernel is the fastest for every call"
        return f"{line} ({why}{'; a switch costs ' + switch_text if switch_text else ''}{_tried_text(plan)})"
    mix = samples.get("planned")
    if mix is None or chosen == "planned":
        return line
    best = samples[chosen]
    if mix.median_ms > best.median_ms:
        why = (f"the mix ({mix.median_ms:.2f} ms) lost to {LABELS.get(chosen, chosen)}: the calls it moves save less "
               f"in place than they cost in the whole model")
    else:
        why = f"the mix ({mix.median_ms:.2f} ms) was not faster beyond the spread"
    return f"{line}; {why}{' (a switch costs ' + switch_text + ')' if switch_text else ''}"


def _tried_text(plan: Mapping[str, Any]) -> str:
    """The fastest mix the planner ran in model order, against woodpecker's own calls there."""
    tried = plan.get("mixes_tried") or []
    if len(tried) < 2:
        return ""
    own, mixes = tried[0], tried[1:]
    best = min(mixes, key=lambda m: m["in_order_ms"])
    return (f"; the best mix run, {best['vendor_calls']} vendor calls in {best['sessions']} sessions, took "
            f"{best['in_order_ms']:.2f} ms in model order against {own['in_order_ms']:.2f} ms")
