"""Does TVM's thread pinning put whole processes in a slow mode? Own builds with and without TVM_BIND_THREADS.

    python benchmarks/thread_binding.py [--models squeezenet,mobilenet_v2,resnet18] [--processes 8] [--json out.json]

Why: on the 2-core VMs a process lands in a fast or a slow mode for its whole life (the same artifact, per-process
medians 4.0 and 8.1 ms). TVM pins its worker threads to cores (TVM_BIND_THREADS, on by default); when another
thread holds the other core as the pool starts, the scheduler can leave the main thread and the pinned worker
sharing one core for the life of the process, at one core's speed (the peak measurement read 117 GFLOP/s, one
core's rate, in such processes). This times each model's own build (woodpecker's kernels, no planner) with the
default pinning and with TVM_BIND_THREADS=0, and onnxruntime, each in `--processes` fresh processes, rotated
(woodpecker.measure.isolated), and prints every per-process median so a bimodal contender shows as such.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine, threads, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="squeezenet,mobilenet_v2,resnet18")
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=6)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import woodpecker
    from woodpecker import models
    from woodpecker.measure.decision import beats
    from woodpecker.measure.isolated import Recipe, time_isolated

    n = threads()
    print(f"machine: {machine()}; threads: {n}; {args.processes} fresh processes per contender, rotated")
    rows = []
    for name in args.models.split(","):
        proto = models.build(name)
        cm = woodpecker.compile(proto, vendor=False)
        feed = cm.random_inputs(0)
        with tempfile.TemporaryDirectory() as work:
            wpk, onnx_path = os.path.join(work, "m.wpk"), os.path.join(work, "m.onnx")
            cm.save(wpk)
            with open(onnx_path, "wb") as f:
                f.write(proto.SerializeToString())
            recipes = [Recipe("pinned", "artifact", wpk, env=(("TVM_BIND_THREADS", "1"),)),
                       Recipe("unpinned", "artifact", wpk, env=(("TVM_BIND_THREADS", "0"),)),
                       Recipe("onnxruntime", "baseline", onnx_path)]
            timings = {t.name: t for t in time_isolated(recipes, feed, n, rounds=args.processes,
                                                        per_round=args.per_round)}
        for t in timings.values():
            assert t.error is None, f"{name} {t.name}: {t.error}"
        pinned, unpinned, ort = (timings[k].samples for k in ("pinned", "unpinned", "onnxruntime"))
        row = {"model": name, **{k: t.samples.to_json() for k, t in timings.items()},
               "pinned_over_unpinned": pinned.median_ms / unpinned.median_ms,
               "unpinned_beats_pinned": beats(unpinned, pinned)}
        rows.append(row)
        for s in (pinned, unpinned, ort):
            per = " ".join(f"{x:.2f}" for x in s.process_ms)
            print(f"{name:14s} {s.name:12s} {s.describe():28s} per process: {per}")
        print(f"{name:14s} pinned/unpinned {row['pinned_over_unpinned']:.2f}x"
              f"{' (unpinned faster beyond the spread)' if row['unpinned_beats_pinned'] else ''}", flush=True)
    write_results(args.json, rows, n, processes=args.processes)


if __name__ == "__main__":
    main()
