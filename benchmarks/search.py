"""Search quality on a fixed suite of layers: random, GA, GA + cost model, RL and TVM MetaSchedule, same budgets.

    python benchmarks/search.py [--layers r50_3x3_64,...] [--trials 256] [--out benchmarks/results/search]
    python benchmarks/search.py --report benchmarks/results/search/results.json   # tables and plots only

Suite: the main convolutions of ResNet-50, MobileNetV2's depthwise and pointwise convolutions, BERT-base-like dense
layers (sequence 128). Each layer is one ONNX node (Conv with bias, MatMul + Add); woodpecker lowers it to one
kernel (the blocked-layout convolution, or the packed dense layer, with the bias fused) and tunes only that kernel.

Method:
  * one session per searcher and layer, 256 trials, a fresh records database each, seed 0; the 64-trial figure
    is the best found within the first 64 trials of the same session (every searcher is ask/tell and does not
    know its budget, so a prefix of a longer session is a shorter session);
  * a trial is one measured candidate (build, reference check, timing: 5 repeats of at least 20 ms, median). The
    timing is a hot loop here, not woodpecker's default cold-cache timing, because both baselines time hot loops
    (onnxruntime's session, MetaSchedule's runner): a single layer is compared on equal terms;
  * MetaSchedule (TVM 0.27, xgb cost model, evolutionary search, 64 candidates per iteration) tunes the same
    loop nest (woodpecker's unscheduled TIR of the kernel) with max_trials_global equal to the budget; its best
    schedule is re-measured with woodpecker's runner so that both are timed the same way;
  * onnxruntime times the single-node model with the same thread count (median of 200 runs after warm-up); its
    figure includes any layout conversion MLAS does inside the node, ours is the kernel alone (the layout
    conversions of a whole model are separate kernels, amortized over a chain of convolutions);
  * "trials to 95%": the first trial at which the session's best is within 5 % of the best any searcher found.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sqlite3
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import geomean, machine, ort_session, threads  # noqa: E402

from woodpecker.measure.measurer import MeasureOptions  # noqa: E402

HOT_LOOP = MeasureOptions(cold_cache=False)  # timed like both baselines (see Method)

LAYERS = {
    # name: (kind, params)
    "r50_3x3_64_56": ("conv", dict(c=64, k=64, hw=56, r=3, stride=1)),
    "r50_1x1_256_64_56": ("conv", dict(c=256, k=64, hw=56, r=1, stride=1)),
    "r50_3x3_128_28": ("conv", dict(c=128, k=128, hw=28, r=3, stride=1)),
    "r50_1x1_512_1024_28s2": ("conv", dict(c=512, k=1024, hw=28, r=1, stride=2)),
    "r50_3x3_256_14": ("conv", dict(c=256, k=256, hw=14, r=3, stride=1)),
    "r50_3x3_512_7": ("conv", dict(c=512, k=512, hw=7, r=3, stride=1)),
    "mv2_dw_144_56": ("conv", dict(c=144, k=144, hw=56, r=3, stride=1, groups=144)),
    "mv2_dw_576_14": ("conv", dict(c=576, k=576, hw=14, r=3, stride=1, groups=576)),
    "mv2_pw_32_192_28": ("conv", dict(c=32, k=192, hw=28, r=1, stride=1)),
    "bert_dense_768_768": ("dense", dict(m=128, k=768, n=768)),
    "bert_dense_768_3072": ("dense", dict(m=128, k=768, n=3072)),
}
SEARCHERS = ["random", "ga", "ga+cm", "rl"]


def layer_model(kind: str, p: dict) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    if kind == "conv":
        g = p.get("groups", 1)
        w = rng.normal(0, 0.1, (p["k"], p["c"] // g, p["r"], p["r"])).astype(np.float32)
        b = rng.normal(0, 0.1, p["k"]).astype(np.float32)
        pad = p["r"] // 2
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[p["r"]] * 2, strides=[p["stride"]] * 2,
                                pads=[pad] * 4, group=g)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, p["c"], p["hw"], p["hw"]])
        graph = helper.make_graph([node], "layer", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    elif kind == "layernorm":  # LayerNormalization over the last axis of X [M, N] (ViT-B/16: 197, 768)
        nodes = [helper.make_node("LayerNormalization", ["x", "g", "beta"], ["y"], axis=-1, epsilon=1e-6)]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [p["m"], p["n"]])
        graph = helper.make_graph(nodes, "layer", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(rng.normal(1, 0.1, p["n"]).astype(np.float32), "g"),
                                   numpy_helper.from_array(rng.normal(0, 0.1, p["n"]).astype(np.float32), "beta")])
    elif kind == "bmm":  # attention scores: X @ X^T * scale, X [B, M, K] (ViT-B/16: 12, 197, 64)
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]), helper.make_node("MatMul", ["x", "xt"], ["t"]),
                 helper.make_node("Mul", ["t", "s"], ["y"])]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [p["b"], p["m"], p["k"]])
        graph = helper.make_graph(nodes, "layer", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(np.array(0.125, np.float32), "s")])
    else:
        w = rng.normal(0, 0.05, (p["k"], p["n"])).astype(np.float32)
        b = rng.normal(0, 0.05, p["n"]).astype(np.float32)
        nodes = [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [p["m"], p["k"]])
        graph = helper.make_graph(nodes, "layer", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def main_task(model, options=None):
    """The model's largest task; `options`: the graph passes (default PassOptions(); a target's pass_options() to
    get the kernel that target compiles, e.g. the host's Winograd convolutions)."""
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize

    lowered = lower_graph(optimize(import_onnx(model)) if options is None else optimize(import_onnx(model), options))
    task = max(lowered.tasks.values(), key=lambda t: t.flops)
    return lowered, task


def ort_latency_us(model: onnx.ModelProto, n: int = 200) -> float:
    sess = ort_session(model.SerializeToString(), threads())
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feed = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(20):
        sess.run(None, feed)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        sess.run(None, feed)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def curve_from_db(db_path: str) -> list[float]:
    """Best latency (us) after each trial, in measurement order (inf until the first success)."""
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT latency_us FROM records ORDER BY id").fetchall()
    conn.close()
    best, out = math.inf, []
    for (lat,) in rows:
        if lat is not None:
            best = min(best, lat)
        out.append(best)
    return out


def run_woodpecker(model, task, searcher: str, trials: int, workdir: str) -> list[float]:
    from woodpecker.tuner import tune

    db = os.path.join(workdir, f"{searcher}.db")
    kind, cost_model = (searcher.split("+")[0], True) if "+" in searcher else (searcher, False)
    tune(model, searcher=kind, trials=trials, db=db, seed=0, cost_model=cost_model, early_stop=0,
         only=[task.key], searcher_options={"policy_path": os.path.join(workdir, "rl-policy.npz")},
         measure_options=HOT_LOOP)
    return curve_from_db(db)[:trials]


def run_metaschedule(task, lowered, trials: int, workdir: str) -> tuple[list[float], float]:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from woodpecker.measure.baselines import metaschedule_builder
    from woodpecker.hw.host import llvm_target
    from woodpecker.measure.measurer import Measurer  # noqa: F401  (same thread settings)
    from woodpecker.schedule.apply import prim_func

    mod = tvm.IRModule({"main": prim_func(task).with_attr("global_symbol", "main")})
    target = llvm_target()
    work = os.path.join(workdir, "ms")
    db = ms.tune_tir(mod=mod, target=target, work_dir=work, max_trials_global=trials,
                     num_trials_per_iter=min(64, trials), cost_model="xgb", num_tuning_cores=threads(), seed=0,
                     builder=metaschedule_builder(threads()))
    best, curve = math.inf, []
    for secs in _ms_run_secs_in_trial_order(work):
        if secs and all(math.isfinite(s) and s < 1e9 for s in secs):
            best = min(best, statistics.median(secs) * 1e6)
        curve.append(best)
    # re-time MetaSchedule's best schedule with woodpecker's runner
    sch = ms.tir_integration.compile_tir(db, mod, target)
    retimed = math.inf
    if sch is not None:
        ex = tvm.compile(sch.mod, target=target)
        lib = os.path.join(workdir, "ms_best.so")
        ex.export_library(lib)
        retimed = _time_library(task, lowered, lib, "main")
    return curve[:trials], retimed


def _ms_run_secs_in_trial_order(work: str) -> list[list[float]]:
    """Run times of MetaSchedule's measured candidates in the order they were measured.

    Why the file and not `db.get_all_tuning_records()`: TVM's JSONDatabase keeps its records sorted by mean run
    time, so that list starts with the best candidate and a convergence curve drawn from it is flat. The database
    file is appended in measurement order: one line per record, `[workload index, [trace, run_secs, target,
    args_info]]`."""
    out = []
    with open(os.path.join(work, "database_tuning_record.json")) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)[1]
                out.append([float(x) for x in (record[1] or [])])
    return out


def _time_library(task, lowered, lib: str, func: str) -> float:
    from woodpecker.measure.jobs import run_job
    from woodpecker.measure.pool import WorkerPool
    from woodpecker.measure.reference import ReferenceStore, reference_io

    node, call = lowered.example(task.key)
    references = ReferenceStore("woodpecker-ms-io-")
    references.add(task, *reference_io(task, node, lowered.graph, call.args))
    with WorkerPool(1, {"TVM_NUM_THREADS": str(threads())}) as pool:
        res = pool.map(run_job, [(lib, func, references.path(task), 5, 20, 1e-3)], 120)[0]
    references.cleanup()
    if res.error or res.value["error"]:
        return math.inf
    return statistics.median(res.value["run_secs"]) * 1e6


def layer_trials(results: dict, L: dict) -> int:
    """Trials per session of one layer's run (older results.json files kept one figure for the whole file, or
    none: then the longest curve)."""
    trials = L.get("trials") or results.get("trials")
    return int(trials) if trials else max((len(c) for c in L["curves"].values()), default=0)


def report(results: dict, out_dir: pathlib.Path, budgets=(64, 256)) -> str:
    layers = results["layers"]
    lengths = {layer_trials(results, L) for L in layers.values()}
    # the standard budgets up to the longest session, and every session's own length
    budgets = tuple(sorted({b for b in budgets if b <= max(lengths)} | lengths))
    hosts = sorted({L.get("machine", results["machine"]) for L in layers.values()})
    lines = [f"machine: {'; '.join(hosts)}; threads: {results['threads']}", "",
             *(["Layers ran on different machines (the `machine` of each layer in results.json): compare ratios",
                "measured in the same run (over default, over onnxruntime), not latencies across layers.", ""]
               if len(hosts) > 1 else []),
             "MetaSchedule's figure at a layer's full budget is its best schedule re-timed by woodpecker's runner; at a",
             "smaller budget, the best of its own measurements within that many trials. A budget's table holds the",
             "layers whose sessions ran at least that many trials; a shorter session is a prefix of a longer one.", ""]
    searchers = [s for s in SEARCHERS + ["metaschedule"] if any(s in L["curves"] for L in layers.values())]
    for budget in budgets:
        at_budget = {n: L for n, L in layers.items() if layer_trials(results, L) >= budget}
        head = "| layer | onnxruntime us | default us | " + " | ".join(f"{s}@{budget} us" for s in searchers) + " |"
        lines += [f"### budget {budget} trials ({len(at_budget)} layers)", "", head,
                  "|" + "---|" * (3 + len(searchers))]
        sp_def = {s: [] for s in searchers}
        sp_ort = {s: [] for s in searchers}
        for name, L in at_budget.items():
            cells = []
            for s in searchers:
                c = L["curves"].get(s)
                v = c[min(budget, len(c)) - 1] if c else math.nan
                if s == "metaschedule" and budget < layer_trials(results, L) and not L.get("ms_curve_in_trial_order"):
                    v = math.nan  # a curve from TVM's latency-sorted record list has no figure at a smaller budget
                if s == "metaschedule" and budget == layer_trials(results, L) and L.get("ms_retimed_us"):
                    v = L["ms_retimed_us"]
                cells.append(f"{v:.1f}")
                if math.isfinite(v) and v > 0:  # a searcher that found nothing valid has no ratio
                    sp_def[s].append(L["default_us"] / v)
                    sp_ort[s].append(L["ort_us"] / v)
            lines.append(f"| {name} | {L['ort_us']:.1f} | {L['default_us']:.1f} | " + " | ".join(cells) + " |")
        def cell(xs: list[float]) -> str:  # the layer count where a searcher lacks figures for some layers
            return f"{geomean(xs):.2f}x" + ("" if len(xs) == len(at_budget) else f" ({len(xs)} layers)")

        lines.append("| geomean speedup over default | | | " + " | ".join(cell(sp_def[s]) for s in searchers) + " |")
        lines.append("| geomean speedup over onnxruntime | | | " + " | ".join(cell(sp_ort[s]) for s in searchers) + " |")
        lines.append("")
    lines += ["### trials to reach 95% of the best found by any searcher (within the layer's session)", "",
              "| layer | trials per session | " + " | ".join(searchers) + " |", "|" + "---|" * (2 + len(searchers))]
    for name, L in layers.items():
        best = min(min(c) for c in L["curves"].values() if c)
        cells = []
        for s in searchers:
            c = L["curves"].get(s, [])
            hit = next((i + 1 for i, v in enumerate(c) if v <= best / 0.95), None)
            if s == "metaschedule" and not L.get("ms_curve_in_trial_order"):
                cells.append("-")  # not in trial order (see _ms_run_secs_in_trial_order)
                continue
            cells.append(str(hit) if hit else ">" + str(len(c)))
        lines.append(f"| {name} | {layer_trials(results, L)} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    _plots(results, out_dir)
    return text


def _plots(results: dict, out_dir: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, L in results["layers"].items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for s, c in L["curves"].items():
            if s == "metaschedule" and not L.get("ms_curve_in_trial_order"):
                if L.get("ms_retimed_us"):  # no curve in trial order: its final best only
                    ax.axhline(L["ms_retimed_us"], color="purple", linestyle="-.", label="metaschedule (final, re-timed)")
                continue
            ys = [v if math.isfinite(v) else np.nan for v in c]
            ax.plot(range(1, len(ys) + 1), ys, label=s)
        ax.axhline(L["ort_us"], color="gray", linestyle="--", label="onnxruntime")
        ax.axhline(L["default_us"], color="black", linestyle=":", label="default schedule")
        ax.set_xlabel("trials")
        ax.set_ylabel("best latency (us)")
        ax.set_title(name)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / f"convergence_{name}.png", dpi=90)
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--searchers", default=",".join(SEARCHERS + ["metaschedule"]))
    ap.add_argument("--trials", type=int, default=256)
    ap.add_argument("--out", default="benchmarks/results/search")
    ap.add_argument("--report", default=None, help="only print tables and plots from a results.json")
    args = ap.parse_args()
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.report:
        results = json.loads(pathlib.Path(args.report).read_text())
        print(report(results, pathlib.Path(args.report).parent))
        return
    path = out_dir / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"layers": {}}
    for L in results["layers"].values():  # each layer keeps its own session length when runs are merged
        L["trials"] = layer_trials(results, L)
    results.pop("trials", None)
    results.update({"machine": machine(), "threads": threads()})
    for name in args.layers.split(","):
        kind, params = LAYERS[name]
        model = layer_model(kind, params)
        lowered, task = main_task(model)
        L = results["layers"].setdefault(name, {"curves": {}})
        if L.get("trials") not in (None, args.trials):  # a rerun at another budget replaces the layer's figures
            missing = set(L["curves"]) - set(args.searchers.split(","))
            if missing:
                sys.exit(f"error: {name} ran {L['trials']} trials per session; rerunning it at {args.trials} needs "
                         f"every searcher it has ({', '.join(sorted(L['curves']))}), or another --out")
            L.clear()
            L["curves"] = {}
        L["task"], L["flops"], L["trials"], L["machine"] = task.name, task.flops, args.trials, machine()
        L["ort_us"] = ort_latency_us(model)
        for s in args.searchers.split(","):
            with tempfile.TemporaryDirectory() as work:
                t0 = time.time()
                if s == "metaschedule":
                    L["curves"][s], L["ms_retimed_us"] = run_metaschedule(task, lowered, args.trials, work)
                    L["ms_curve_in_trial_order"] = True
                else:
                    L["curves"][s] = run_woodpecker(model, task, s, args.trials, work)
                L.setdefault("wall_s", {})[s] = time.time() - t0
            if s == "random":
                L["default_us"] = L["curves"]["random"][0]
            L.setdefault("default_us", L["curves"][s][0] if s != "metaschedule" else math.nan)
            print(f"{name} {s}: best {min(L['curves'][s]):.1f} us after {len(L['curves'][s])} trials "
                  f"({L['wall_s'][s]:.0f} s); onnxruntime {L['ort_us']:.1f} us", flush=True)
            path.write_text(json.dumps(results, indent=1))  # kept after every session: an interrupted run loses little
    print(report(results, out_dir))


if __name__ == "__main__":
    main()
