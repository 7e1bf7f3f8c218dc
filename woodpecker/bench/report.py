"""Bench: woodpecker (untuned, and tuned when records are given) against the baselines, with per-operator detail.

Method. Every contender runs the same model on the same seeded inputs with the same number of threads, each in a
process of its own (woodpecker's compiled models as saved artifacts, loaded as a user would); outputs are checked
against onnxruntime first (woodpecker.measure.correctness: max |out - ref| / max |ref| <= 1e-3). Timing is interleaved: rounds in which each
contender in turn runs 3 warm-up runs and `per_round` timed runs back to back, so that drift hits all alike and no
runtime's spinning worker threads land on another's time (woodpecker.measure.isolated); the figure is the median of
single-run latencies and the spread the interquartile range. Per-operator times ('us') are timed the way the
planner times its choices ('choices timed'): in a fresh process with passive wait policies, each call of the compiled
model by itself, on its real input buffers after a run of the model, warm-up runs then blocks of back-to-back runs,
the median of 20 (profile_each_call in woodpecker.runtime.executor). So a call's 'us' and the planner's figure for
its chosen implementation measure the same thing, and no call pays for the spinning threads of the runtime before
it (timed in model order in the bench's own process, an 11 us pooling call read 1931 us). Achieved GFLOP/s are set
against the machine's peak (woodpecker.hw.peak), measured first, in a process of its own, for a roofline view.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import pathlib
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from woodpecker.measure import baselines as bl
from woodpecker.measure.correctness import RTOL, relative_error
from woodpecker.measure.isolated import Recipe, time_isolated


OPERATOR_TIMING = ("each call by itself, as the planner times its choices: a fresh process with passive wait "
                   "policies, the call on its real buffers after a run of the model, median of 20 back-to-back runs "
                   "after warm-up")


def profile_job(artifact: str, feed: Mapping[str, np.ndarray], repeat: int = 20) -> list[tuple[str, float]]:
    """Run in a fresh process: load the saved model, run it once on the bench's inputs, and time every call (see
    OPERATOR_TIMING; a device model's calls are timed in model order, each ending with a device sync)."""
    import woodpecker

    cm = woodpecker.load(artifact)
    cm.executor.set_inputs(dict(feed))
    if cm.backend == "host":
        return cm.executor.profile(repeat, each=True)
    return cm.executor.profile(repeat)


def profile_apart(artifacts: Mapping[str, str], feed: Mapping[str, np.ndarray], threads: int, torch: bool,
                  timeout_s: float = 600.0) -> dict[str, list[tuple[str, float]] | str]:
    """Per-call seconds of each saved model (name -> path), each in a fresh process with the wait policies the
    planner times its choices with, so that 'us' and 'choices timed' are one method; a failure is its one-line
    error instead."""
    from woodpecker.measure.pool import WorkerPool
    from woodpecker.config import PASSIVE_WAITS

    out: dict[str, list[tuple[str, float]] | str] = {}
    env = {**dict(PASSIVE_WAITS), "TVM_NUM_THREADS": str(threads)}
    for name, path in artifacts.items():
        with WorkerPool(1, env, torch=torch) as pool:
            [result] = pool.map(profile_job, [(path, dict(feed))], timeout_s=timeout_s)
        out[name] = result.value if result.error is None else f"per-operator profile failed: {result.error}"
    return out


def operators(cm, prof: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    """Per-call latency, chosen implementation and achieved throughput of a compiled model, from its per-call
    seconds (profile_job)."""
    meta = cm.metadata.get("plan") or {}
    plan = {c["index"]: c for c in meta.get("calls", [])}
    # a shipped mix may run several original calls as one onnxruntime session: each row maps to its calls
    groups = meta.get("planned_calls") if (meta.get("model") or {}).get("chosen") == "planned" else None
    by_name = {k.name: k for k in cm.kernels}
    rows = []
    for i, ((func, secs), call) in enumerate(zip(prof, cm.program.calls)):
        members = groups[i] if groups else [i]
        p = plan.get(members[0], {})
        kernel = by_name.get(p.get("kernel", func))
        flops = sum(k.flops for k in (by_name.get(plan.get(j, {}).get("kernel", "")) for j in members) if k) \
            if len(members) > 1 else (kernel.flops if kernel else 0)
        nbytes = 0
        for v, shape in call.args:
            dtype = cm.program.values.get(v, (None, "float32"))[1] if v in cm.program.values else \
                str(cm.constants[v].dtype) if v in cm.constants else "float32"
            nbytes += int(np.prod(shape)) * np.dtype(dtype).itemsize
        rows.append({
            "index": i, "kernel": p.get("kernel", func), "family": kernel.family if kernel else "vendor",
            "implementation": call.vendor or "woodpecker", "us": secs * 1e6, "flops": flops, "bytes": nbytes,
            "gflops": flops / secs / 1e9 if secs > 0 else 0.0,
            "alternatives_us": {r["name"]: r["median_us"] for r in p.get("results", []) if r.get("median_us")},
        })
    return rows


def run_bench(model: Any, target: str = "host", baselines: Sequence[str] = ("onnxruntime", "torch"), db: str | None = None,
              trials: int | None = None, rounds: int = 10, per_round: int = 5, vendor: bool = True,
              progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    import woodpecker
    from woodpecker import config
    from woodpecker.frontend.source import as_onnx
    from woodpecker.frontend.onnx import load_onnx_model
    from woodpecker.hw.host import detect
    from woodpecker.hw.peak import measure_peak

    threads = config.prepare_tvm_threads()
    proto, label = load_onnx_model(as_onnx(model))
    # First, before this process starts any runtime (their threads would share the cores with the measurement)
    progress(f"measuring the CPU's peak ({threads} threads)")
    peak = measure_peak(threads)
    model_bytes = proto.SerializeToString()
    progress("compiling woodpecker (default schedules)")
    t0 = time.perf_counter()
    untuned = woodpecker.compile(proto, target=target, vendor=vendor)
    contenders_cm = {"woodpecker": (untuned, time.perf_counter() - t0)}
    if trials:
        from woodpecker.tuner import default_db_path

        db = db or default_db_path()
        progress(f"tuning woodpecker ({trials} trials)")
        t0 = time.perf_counter()
        woodpecker.tune(proto, target, trials=trials, db=db)
        contenders_cm["woodpecker-tuned"] = (woodpecker.compile(proto, target=target, db=db, vendor=vendor),
                                             time.perf_counter() - t0)
    elif db:
        t0 = time.perf_counter()
        contenders_cm["woodpecker-tuned"] = (woodpecker.compile(proto, target=target, db=db, vendor=vendor),
                                             time.perf_counter() - t0)
    feed = untuned.random_inputs()
    reference = bl.prepare("onnxruntime", model_bytes, feed, threads).outputs()
    with tempfile.TemporaryDirectory(prefix="woodpecker-bench-") as work:
        model_path = pathlib.Path(work, "model.onnx")
        model_path.write_bytes(model_bytes)
        recipes = []
        for name, (cm, _) in contenders_cm.items():
            cm.save(pathlib.Path(work, f"{name}.wpk"))
            recipes.append(Recipe(name, "artifact", str(pathlib.Path(work, f"{name}.wpk"))))
        recipes += [Recipe(name, "baseline", str(model_path), trials or 64) for name in baselines]
        timings = time_isolated(recipes, feed, threads, rounds, per_round, progress=progress)
        progress("per-operator profile")
        # the generated program of every variant, also when the plan ships onnxruntime for the whole model
        profiles = profile_apart({name: str(pathlib.Path(work, f"{name}.wpk")) for name in contenders_cm}, feed,
                                 threads, torch=vendor)
    contenders = []
    for t in timings:
        setup_s = contenders_cm[t.name][1] if t.name in contenders_cm else t.setup_s
        error = t.error
        if error is None:
            errs = [relative_error(o, r) for o, r in zip(t.outputs, reference)]
            if len(t.outputs) != len(reference) or not max(errs) <= RTOL:
                error = f"outputs differ from onnxruntime (max relative error {max(errs, default=float('inf')):.2e})"
        ok = error is None
        contenders.append({"name": t.name, "median_ms": t.median_ms if ok else None, "p25_ms": t.p25_ms if ok else None,
                           "p75_ms": t.p75_ms if ok else None, "runs": t.runs, "setup_s": setup_s, "note": t.note,
                           "error": error})
    ops_by_variant, op_errors = {}, {}
    for name, (cm, _) in contenders_cm.items():
        prof = profiles[name]
        if isinstance(prof, str):
            op_errors[name], prof = prof, []
        ops_by_variant[name] = operators(cm, prof)
    host = detect()
    return {
        "model": proto.graph.name or label, "target": target, "threads": threads,
        "machine": f"{host.model_name} ({host.mcpu}, {host.cores} CPUs, {'/'.join(host.features)})",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "peak": {"gflops": peak.gflops, "fma_gflops": peak.fma_gflops, "fma_core_gflops": peak.fma_core_gflops,
                 "sgemm_gflops": peak.sgemm_gflops, "bandwidth_gbs": peak.bandwidth_gbs},
        "gflop_per_run": untuned.gflop,
        "method": __doc__.split("Method.")[1].strip() if __doc__ else "",
        "contenders": contenders,
        "plans": {name: (cm.metadata.get("plan") or {}).get("model") for name, (cm, _) in contenders_cm.items()},
        "operator_timing": OPERATOR_TIMING,
        "operators": ops_by_variant,
        "operator_errors": op_errors,
    }


# ----------------------------------------------------------------------------------------------------------------
# output files


def chart_png(report: Mapping[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    live = [c for c in report["contenders"] if c["median_ms"]]
    names = [c["name"] for c in live]
    med = [c["median_ms"] for c in live]
    err = [[c["median_ms"] - c["p25_ms"] for c in live], [c["p75_ms"] - c["median_ms"] for c in live]]
    colors = ["#2b7a3d" if n.startswith("woodpecker") else "#8a8a8a" for n in names]
    ax1.barh(names, med, xerr=err, color=colors)
    ax1.set_xlabel("latency (ms), median with interquartile range")
    ax1.set_title(f"{report['model']} on {report['target']}")
    ax1.invert_yaxis()
    ops = next(iter(report["operators"].values()), [])
    peak, bw = report["peak"]["gflops"], report["peak"]["bandwidth_gbs"] or 1.0
    xs = [o["flops"] / o["bytes"] for o in ops if o["flops"] and o["bytes"]]
    ys = [o["gflops"] for o in ops if o["flops"] and o["bytes"]]
    if xs:
        grid = np.logspace(np.log10(min(xs) / 2), np.log10(max(xs) * 2), 50)
        ax2.plot(grid, np.minimum(peak, grid * bw), color="black", linewidth=1, label="roofline (measured)")
        ax2.scatter(xs, ys, s=12, color="#2b7a3d", label="woodpecker calls")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.legend(fontsize=7)
    ax2.set_xlabel("arithmetic intensity (FLOP / byte of the call's tensors)")
    ax2.set_ylabel("GFLOP/s")
    ax2.set_title("per-operator roofline")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


PLOT_HINT = "matplotlib is not installed: the report has no chart (pip install 'woodpecker[bench]' adds it)"


def plotting_available() -> bool:
    """Whether the chart can be drawn: matplotlib is the `bench` extra, not part of the default install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plan_sentence(variant: str, plan: Mapping[str, Any]) -> str:
    """The planner's whole-model decision as one sentence: what ships, and the times it chose between."""
    times = sorted((plan.get("times_ms") or {}).items(), key=lambda kv: kv[1])
    timed = ", ".join(f"{k} {v:.2f} ms" for k, v in times if v is not None)
    how = f", {plan['timing']}" if plan.get("timing") else ""
    text = f"{variant} ships {plan.get('chosen') or 'its generated kernels'}"
    if timed:
        text += f" (whole model, median: {timed}{how})"
    if plan.get("reason"):
        text += f": {plan['reason']}"
    if plan.get("rejected"):
        text += f"; rejected: {plan['rejected']}"
    return text + "."


def _peak_parts(peak: Mapping[str, Any], threads: int) -> str:
    """What the peak is the largest of (woodpecker.hw.peak), for the report's reader."""
    parts = [f"FMA kernel on {threads} threads {peak['fma_gflops']:.0f}"]
    if peak.get("fma_core_gflops"):
        parts.append(f"{threads} x one core's {peak['fma_core_gflops']:.0f}")
    return ", ".join(parts + [f"SGEMM {peak['sgemm_gflops']:.0f}"])


def html_report(report: Mapping[str, Any], png: bytes | None) -> str:
    e = html.escape
    best = min((c["median_ms"] for c in report["contenders"] if c["median_ms"]), default=None)
    rows = []
    for c in report["contenders"]:
        if c["median_ms"]:
            cells = f"<td>{c['median_ms']:.3f}</td><td>{c['p25_ms']:.3f} - {c['p75_ms']:.3f}</td><td>{c['median_ms'] / best:.2f}x</td>"
        else:
            cells = f"<td colspan=3>{e(c['error'] or '')}</td>"
        rows.append(f"<tr><td>{e(c['name'])}</td>{cells}<td>{c['setup_s']:.1f}</td><td>{e(c['note'] or '')}</td></tr>")
    op_tables = []
    for variant, ops in report["operators"].items():
        body = "".join(
            f"<tr><td>{o['index']}</td><td>{e(o['kernel'])}</td><td>{e(o['family'])}</td><td>{e(o['implementation'])}</td>"
            f"<td>{o['us']:.1f}</td><td>{o['gflops']:.1f}</td><td>{100 * o['gflops'] / report['peak']['gflops']:.0f}%</td>"
            f"<td>{e(', '.join(f'{k} {v:.1f}' for k, v in o['alternatives_us'].items()))}</td></tr>" for o in ops)
        op_tables.append(f"<h2>Operators: {e(variant)}</h2><table><tr><th>#</th><th>kernel</th><th>family</th>"
                         f"<th>implementation</th><th>us</th><th>GFLOP/s</th><th>of peak</th><th>choices timed (us)</th></tr>"
                         f"{body}</table>")
    plans = "".join(f"<li>{e(plan_sentence(k, v))}</li>" for k, v in report["plans"].items() if v)
    chart = (f'<img alt="latency chart and roofline" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
             if png else f"<p class=\"meta\">{e(PLOT_HINT)}</p>")
    timing = report.get("operator_timing")
    op_note = f"<p class=\"meta\">Per-operator 'us': {e(timing)}.</p>" if timing else ""
    op_errors = "".join(f"<p>{e(k)}: {e(v)}</p>" for k, v in (report.get("operator_errors") or {}).items())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>woodpecker bench: {e(report['model'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child,th:first-child{{text-align:left}}
th{{background:#eef}} .meta{{color:#555}}</style></head>
<body><h1>{e(report['model'])} on {e(report['target'])}</h1>
<p class="meta">{e(report['machine'])}; {report['threads']} threads; {report['gflop_per_run']:.2f} GFLOP per run;
measured peak {report['peak']['gflops']:.0f} GFLOP/s ({_peak_parts(report['peak'], report['threads'])}), memory bandwidth (read) {report['peak']['bandwidth_gbs']:.1f} GB/s; {e(report['date'])}</p>
{chart}
<h2>End to end</h2><table><tr><th>contender</th><th>median ms</th><th>IQR ms</th><th>vs best</th><th>setup s</th><th>note</th></tr>
{''.join(rows)}</table>
<h2>Plans</h2><p>The planner's whole-model check, per woodpecker build:</p><ul>{plans}</ul>
{op_note}{op_errors}{''.join(op_tables)}
<h2>Method</h2><p>{e(report['method'])}</p>
</body></html>
"""


def write_outputs(report: Mapping[str, Any], out_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """report.json, report.png and report.html; without matplotlib (see PLOT_HINT) the JSON and the HTML only."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = chart_png(report) if plotting_available() else None
    paths = {"json": out / "report.json", "png": out / "report.png", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(report, indent=1))
    if png is None:
        del paths["png"]
    else:
        paths["png"].write_bytes(png)
    paths["html"].write_text(html_report(report, png))
    return paths
