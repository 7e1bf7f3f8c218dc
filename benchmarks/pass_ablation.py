"""What one graph pass buys, whole model: woodpecker's own build with the pass and without it, and onnxruntime,
timed in the same run.

    python benchmarks/pass_ablation.py [--models shufflenet_v2,squeezenet] [--pass inline_injective]
                                        [--rounds 8] [--per-round 6] [--json out.json]

Method: each model is compiled twice by woodpecker with its default schedules and without the planner (its own
kernels only): once with the full pass pipeline, once with the named pass of woodpecker.passes.pipeline replaced
by the identity. Both artifacts and an onnxruntime session (all graph optimizations, MLAS) are timed in fresh
processes, one per round per contender, rotated (woodpecker.measure.isolated); a figure is the median of the
per-process medians with their quartiles as the spread, and the verdict says whether a difference is beyond the
spread (woodpecker.measure.decision). Outputs are checked against onnxruntime first. Kernel counts are the calls
per run of each build.
"""

from __future__ import annotations

import argparse
import sys
import unittest.mock

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import compare_line, machine, ort_session, threads, time_against_onnxruntime, write_results  # noqa: E402
from e2e import checked, inputs_for  # noqa: E402



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shufflenet_v2")
    ap.add_argument("--pass", dest="pass_name", default="inline_injective",
                    help="the pass of woodpecker.passes.pipeline to switch off in the baseline build")
    ap.add_argument("--rounds", type=int, default=8, help="fresh processes per contender")
    ap.add_argument("--per-round", type=int, default=6, help="timed runs per process")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import woodpecker
    from woodpecker import models
    from woodpecker.passes import pipeline

    if not callable(getattr(pipeline, args.pass_name, None)):
        raise SystemExit(f"woodpecker.passes.pipeline has no pass {args.pass_name!r}")
    n_threads = threads()
    print(f"machine: {machine()}; threads per contender: {n_threads}; {args.rounds} processes per contender")
    rows = []
    for name in args.models.split(","):
        proto = models.build(name)
        with_pass = woodpecker.compile(proto, vendor=False)
        with unittest.mock.patch.object(pipeline, args.pass_name, lambda graph: graph):
            without = woodpecker.compile(proto, vendor=False)
        feed = inputs_for(name, with_pass)
        ref = ort_session(proto.SerializeToString(), n_threads).run(None, feed)[0]
        labels = {"with": f"with {args.pass_name}", "without": f"without {args.pass_name}"}
        timings = time_against_onnxruntime(proto, {labels["with"]: with_pass, labels["without"]: without}, feed,
                                           n_threads, args.rounds, args.per_round)
        samples = {t.name: t.samples for t in checked(name, timings, ref)}
        calls = {key: len(cm.program.calls) for key, cm in (("with", with_pass), ("without", without))}
        on, off, ort = samples[labels["with"]], samples[labels["without"]], samples["onnxruntime"]
        row = {"model": name, "pass": args.pass_name, "calls": calls,
               **{k: v.to_json() for k, v in samples.items()},
               "speedup": off.median_ms / on.median_ms, "vs_onnxruntime": ort.median_ms / on.median_ms}
        rows.append(row)
        print(f"{name}: {calls['without']} -> {calls['with']} kernel calls per run", flush=True)
        print(f"  {compare_line(on, off)}\n  {compare_line(on, ort)}", flush=True)
    write_results(args.json, rows, n_threads, rounds=args.rounds)


if __name__ == "__main__":
    main()
