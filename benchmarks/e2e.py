"""End-to-end latency of the zoo models: woodpecker (untuned, and tuned with --db) against onnxruntime, same run.

    python benchmarks/e2e.py [--models resnet50,mobilenet_v2] [--db records.db] [--rounds 10] [--json out.json]
                             [--no-vendor | --plan]

--models takes zoo names, or "wider" (the families added for issue 14: DenseNet, Inception, ResNeXt, MobileNetV3,
AlexNet, VGG-19, ViT-B/16, ShuffleNet v1) or "all" (the default set and the wider one); the default set is the original six.

With --plan, each model is compiled with the planner and the builds it compared are timed again here: woodpecker's
own kernels, the per-call mix (when the planner made one) and onnxruntime, with what the planner shipped.

Method (see benchmarks/common.py): each model is compiled by woodpecker with its default schedules (and, with
--db, with the best tuning records), and loaded in an onnxruntime session (all graph optimizations, MLAS); both
use the same number of threads (TVM_NUM_THREADS, default: all cores). Each contender runs in fresh processes, one
per round (woodpecker's models as saved artifacts, loaded as a user would; see woodpecker.measure.isolated for why),
rotated, on the same inputs; the figure is the median of the per-process medians with their quartiles as the spread
(woodpecker.measure.decision, which also says whether a difference is beyond the spread); the plan column says what the
planner shipped (woodpecker's program, a mixed plan, or onnxruntime for the whole model); the ratio is onnxruntime / woodpecker
(above 1: woodpecker is faster). Outputs are checked against onnxruntime before timing.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import geomean, machine, ort_session, threads, time_against_onnxruntime, write_results  # noqa: E402


DEFAULT_MODELS = ["resnet18", "resnet50", "mobilenet_v2", "bert", "squeezenet", "shufflenet_v2"]
# Not in the default run: VGG-19 and ViT-B/16 are ~18-20 GMACs each and the whole set takes much longer.
WIDER_MODELS = ["densenet121", "inception_v1", "resnext50", "mobilenet_v3", "alexnet", "vgg19", "vit_b16",
                "shufflenet_v1"]
MODEL_SETS = {"default": DEFAULT_MODELS, "wider": WIDER_MODELS, "all": DEFAULT_MODELS + WIDER_MODELS}


def model_names(arg: str) -> list[str]:
    """--models: comma-separated zoo names and set names (default, wider, all), in order, each model once."""
    names = [m for part in arg.split(",") for m in MODEL_SETS.get(part, [part])]
    return list(dict.fromkeys(names))


def inputs_for(name: str, cm) -> dict[str, np.ndarray]:
    if name == "bert":
        seq = cm.inputs[0].shape[1]
        rng = np.random.default_rng(0)
        return {"input_ids": rng.integers(0, 8192, (1, seq)).astype(np.int64),
                "attention_mask": np.ones((1, seq), np.int64)}
    return cm.random_inputs()


def checked(model: str, timings, ref: np.ndarray):
    """The timings, each after its contender's output was checked against onnxruntime's (a failure stops the run)."""
    from woodpecker.measure.correctness import relative_error

    for t in timings:
        assert t.error is None, f"{model} {t.name}: {t.error}"
        err = relative_error(np.asarray(t.outputs[0]), np.asarray(ref))
        assert err <= 1e-3, f"{model} {t.name}: output differs from onnxruntime (relative error {err:.2e})"
    return timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help="zoo names and sets, comma-separated: default, wider, all (see above)")
    ap.add_argument("--db", default=None, help="records database: also time the tuned compile")
    ap.add_argument("--rounds", type=int, default=8, help="fresh processes per contender")
    ap.add_argument("--per-round", type=int, default=6, help="timed runs per process")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-vendor", action="store_true",
                    help="woodpecker's own kernels only (no planner vendor choices, no whole-model onnxruntime)")
    ap.add_argument("--plan", action="store_true", help="time the planner's candidates: own, per-call mix, onnxruntime")
    args = ap.parse_args()
    if args.plan:
        plan_table(args)
        return

    import woodpecker
    from woodpecker import models

    from woodpecker.hw.peak import measure_peak

    n_threads = threads()
    peak = measure_peak(n_threads)
    print(f"machine: {machine()}; threads per contender: {n_threads}; peak {peak.gflops:.0f} GFLOP/s, bandwidth "
          f"{peak.bandwidth_gbs:.1f} GB/s (measured)")
    rows = []
    for name in model_names(args.models):
        proto = models.build(name)
        t0 = time.perf_counter()
        untuned = woodpecker.compile(proto, vendor=not args.no_vendor)
        compile_s = time.perf_counter() - t0
        tuned = woodpecker.compile(proto, db=args.db, vendor=not args.no_vendor) if args.db else None
        feed = inputs_for(name, untuned)
        sess = ort_session(proto.SerializeToString(), n_threads)
        ref = sess.run(None, feed)[0]
        del sess
        timings = time_against_onnxruntime(proto, {"woodpecker": untuned, "woodpecker-tuned": tuned}, feed,
                                           n_threads, args.rounds, args.per_round)
        res = {t.name: {"median_ms": t.median_ms, "p25_ms": t.p25_ms, "p75_ms": t.p75_ms}
               for t in checked(name, timings, ref)}
        plans = {label: cm.metadata.get("plan", {}).get("model", {}).get("chosen", "woodpecker")
                 for label, cm in (("untuned", untuned), ("tuned", tuned)) if cm is not None}
        work = model_work(proto)
        row = {"model": name, "gflop": work[0], "compile_s": compile_s, "plans": plans, **{k: v["median_ms"] for k, v in res.items()},
               "spread": {k: [v["p25_ms"], v["p75_ms"]] for k, v in res.items()}}
        row["ratio_untuned"] = row["onnxruntime"] / row["woodpecker"]
        row["floor_ms"] = roofline_floor_ms(work, peak)
        row["of_floor"] = {k: row["floor_ms"] / v["median_ms"] for k, v in res.items()}
        if tuned is not None:
            row["ratio_tuned"] = row["onnxruntime"] / row["woodpecker-tuned"]
            tuned_kernels = sum(1 for k in tuned.kernels if k.origin == "tuned")
            row["tuned_kernels"] = f"{tuned_kernels}/{len(tuned.kernels)}"
        rows.append(row)
        extra = (f"  tuned {row['woodpecker-tuned']:8.2f} ms  ort/tuned {row['ratio_tuned']:.2f}x "
                 f"({row['tuned_kernels']} kernels tuned)") if tuned is not None else ""
        print(f"{name:14s} onnxruntime {row['onnxruntime']:8.2f} ms  woodpecker {row['woodpecker']:8.2f} ms  "
              f"ort/woodpecker {row['ratio_untuned']:.2f}x{extra}  (plans: {plans}); roofline floor "
              f"{row['floor_ms']:.2f} ms: " + ", ".join(f"{k} at {v:.0%}" for k, v in row["of_floor"].items()),
              flush=True)
    print(f"geometric mean ort/woodpecker (untuned): {geomean([r['ratio_untuned'] for r in rows]):.2f}x")
    if args.db:
        print(f"geometric mean ort/woodpecker (tuned):   {geomean([r['ratio_tuned'] for r in rows]):.2f}x")
    write_results(args.json, rows, n_threads)


def model_work(proto) -> tuple[float, int]:
    """(GFLOP, weight bytes) of one run of the model itself: its graph optimized and lowered without the blocked
    layout. Why not the compiled kernels' sum: padded channel blocks and merged groups compute (and store) zeros
    (ShuffleNetV2's 58 -> 64 channel blocks, ResNeXt's 8-channel groups in pairs), which would raise the floor
    and flatter every contender's fraction of it.

    A convolution the host build runs by Winograd (woodpecker.passes.layout.winograd_fits) counts the FLOPs of its
    36 products per 4x4 output tile, a quarter of the direct convolution's (up to the tiles' overhang), so that the
    floor stays a floor for the arithmetic the build does; its weight still counts once as given (its transformed
    form is 4x larger, which the build reads instead)."""
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import PassOptions, optimize

    graph = optimize(import_onnx(proto), PassOptions(blocked_layout=False, pack_dense=False))  # batch norms folded
    weight_bytes = sum(np.asarray(v).nbytes for v in graph.constants.values())
    lowered = lower_graph(graph)
    flops = sum(lowered.tasks[key].flops * n for key, n in lowered.occurrences().items())
    return (flops - winograd_saving(proto)) / 1e9, weight_bytes


def winograd_saving(proto) -> int:
    """FLOPs the model's Winograd convolutions do not do: per convolution 2 x N x C x K x (9 x OH x OW - 36 x
    tiles), from its unfused graph (batch norms folded)."""
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.ir import winograd
    from woodpecker.passes import layout
    from woodpecker.passes.pipeline import PassOptions, optimize

    graph = optimize(import_onnx(proto), PassOptions(blocked_layout=False, pack_dense=False, fuse=False))
    saved = 0
    for node in graph.nodes:
        if node.op != "conv2d" or node.inputs[1] not in graph.constants:
            continue
        weight_shape = graph.constants[node.inputs[1]].shape
        n, k, oh, ow = graph.types[node.outputs[0]].shape
        if layout.winograd_fits(node, weight_shape, (n, k, oh, ow)):
            c = weight_shape[1]
            saved += 2 * n * c * k * (9 * oh * ow - winograd.POSITIONS * winograd.tiles(oh) * winograd.tiles(ow))
    return saved


def roofline_floor_ms(work: tuple[float, int], peak) -> float:
    """The model's floor on this machine from its model_work (GFLOP, weight bytes): its FLOPs at the measured peak,
    or its weights read once at the measured bandwidth, whichever takes longer (batch 1: every weight is read once
    per run)."""
    gflop, weight_bytes = work
    compute_ms = gflop / peak.gflops * 1e3
    memory_ms = weight_bytes / (peak.bandwidth_gbs * 1e9) * 1e3 if peak.bandwidth_gbs else 0.0
    return max(compute_ms, memory_ms)


def plan_table(args) -> None:
    """Own kernels, the planner's per-call mix and onnxruntime, per model, with what the planner shipped."""
    import woodpecker
    from woodpecker import models
    from woodpecker.measure.decision import beats

    from woodpecker.hw.peak import measure_peak

    n_threads = threads()
    peak = measure_peak(n_threads)
    print(f"machine: {machine()}; threads per contender: {n_threads}; {args.rounds} processes per contender; "
          f"peak {peak.gflops:.0f} GFLOP/s, bandwidth {peak.bandwidth_gbs:.1f} GB/s (measured)")
    rows = []
    for name in model_names(args.models):
        proto = models.build(name)
        t0 = time.perf_counter()
        shipped = woodpecker.compile(proto, db=args.db, vendor=True)
        compile_s = time.perf_counter() - t0
        plan = shipped.metadata["plan"]
        feed = inputs_for(name, shipped)
        ref = ort_session(proto.SerializeToString(), n_threads).run(None, feed)[0]
        timings = time_against_onnxruntime(proto, {label: shipped.plan_candidates.get(label)
                                                   for label in ("woodpecker", "planned")},
                                           feed, n_threads, args.rounds, args.per_round)
        samples = {t.name: t.samples for t in checked(name, timings, ref)}
        own, ort = samples["woodpecker"], samples["onnxruntime"]
        mix = samples.get("planned")
        best_pure = min((own, ort), key=lambda s: s.median_ms)
        vendor_calls = sum(1 for c in plan["calls"] if c["chosen"] != "woodpecker")
        floor_ms = roofline_floor_ms(model_work(proto), peak)
        row = {"model": name, "compile_s": compile_s, "shipped": plan["model"]["chosen"], "floor_ms": floor_ms,
               "of_floor": {k: floor_ms / v.median_ms for k, v in samples.items()},
               "reason": plan["model"].get("reason", ""), "vendor_calls": vendor_calls, "calls": len(plan["calls"]),
               "switch_us": plan.get("switch_us", {}), "merged_saving_us": plan.get("merged_saving_us", {}),
               "mixes_tried": plan.get("mixes_tried", []), **{k: v.to_json() for k, v in samples.items()}}
        if mix is not None:
            row["mix_vs_best_pure"] = best_pure.median_ms / mix.median_ms
            row["mix_beats_both"] = beats(mix, own) and beats(mix, ort)
            row["mix_slower_beyond_spread"] = beats(best_pure, mix)
        rows.append(row)
        mix_text = (f"mix {mix.describe()} ({vendor_calls}/{len(plan['calls'])} vendor calls, "
                    f"{row['mix_vs_best_pure']:.2f}x the better pure build"
                    f"{', beats both beyond the spread' if row['mix_beats_both'] else ''}"
                    f"{', SLOWER beyond the spread' if row['mix_slower_beyond_spread'] else ''})"
                    if mix is not None else "no per-call mix (every call stayed with woodpecker)")
        tried = row["mixes_tried"][1:]
        if tried:  # the mixes the planner ran in model order, against its own calls there
            best_run = min(tried, key=lambda m: m["in_order_ms"])
            mix_text += (f" [best mix run: {best_run['vendor_calls']} vendor calls in {best_run['sessions']} "
                         f"sessions, {best_run['in_order_ms']:.2f} ms in model order vs own "
                         f"{row['mixes_tried'][0]['in_order_ms']:.2f} ms]")
        print(f"{name:14s} own {own.describe()}  onnxruntime {ort.describe()}  {mix_text}  "
              f"shipped: {row['shipped']} ({row['reason']}); roofline floor {floor_ms:.2f} ms: own at "
              f"{row['of_floor']['woodpecker']:.0%}, onnxruntime at {row['of_floor']['onnxruntime']:.0%}", flush=True)
    write_results(args.json, rows, n_threads, processes=args.rounds, peak_gflops=peak.gflops,
                  bandwidth_gbs=peak.bandwidth_gbs)


if __name__ == "__main__":
    main()
