"""Woodpecker's own build and onnxruntime alternated inside each of several fresh processes: the model's ratio against
onnxruntime free of the process-mode noise of these VMs.

    python benchmarks/paired_ort.py --models all [--processes 6] [--rounds 8] [--db records.db] [--json out.json]

With --db, each process times three builds: woodpecker tuned (that records database), woodpecker untuned and
onnxruntime, so that what tuning bought and where the tuned build stands are ratios of the same processes.

Why: these shared VMs run in a fast or a slow mode that lasts tens of seconds (one artifact's per-process medians
4.0 and 8.1 ms in one run; onnxruntime alike, less so): the host moves the VM's two vCPUs between core complexes,
and while they sit on different ones they share no L3 (a cache-line round trip between them of ~350 ns instead of
~60; common.core_roundtrip_ns). Two runtimes timed in separate processes (e2e.py) differ by which modes their
processes drew as much as by their code: a whole-model ratio there moves 0.97x-1.02x between runs of the same builds.
Here both runtimes share each process's modes, the ratio is taken per process, and the share of blocks that ran with
the vCPUs apart is reported (`split_l3_share`: the round trip measured before every block).

Method: the model is compiled by woodpecker with its default schedules (with --db: also with the tuned ones of
that records database where it has them) and without the planner (its own kernels only) and saved; each of
--processes fresh processes loads the artifact as a user would and opens an onnxruntime session on the model (all
graph optimizations, MLAS, the same thread count, spinning as shipped), checks that their outputs agree, warms both
up, then times --rounds rounds, each a block of runs of one runtime and then one of the other, the order
alternating by round (three builds: rotating). A runtime that just ran keeps its worker threads spinning for a
while and slows whatever runs next, so between blocks the process sleeps until its CPU time stops growing (both
pools parked: at least GAP_S, at most GAP_MAX_S; the largest CPU share seen in a final gap is reported, and a
figure above 5 % would mean the blocks were not apart). A process's figure per runtime is the median of its rounds'
block medians; its ratio is onnxruntime / woodpecker (with --db also untuned / tuned). The result is the median of
the per-process ratios with their quartiles, beside each runtime's median time (which does carry the modes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    alternated_blocks, core_roundtrip_ns, geomean, machine, ort_session, outputs_agree, quartiles, split_l3_share,
    threads, write_results)

GAP_S = 0.05  # seconds of sleep between blocks: both thread pools spin for well under this after a run
GAP_MAX_S = 1.0  # give up waiting for the pools to park after this long (reported through the gap's CPU share)
QUIET = 0.05  # CPU seconds per wall second (over all threads) below which a gap counts as quiet


def _quiesce() -> float:
    """Sleep until the process's CPU time stops growing (its thread pools parked); the CPU share of the last gap."""
    import time

    waited, share = 0.0, 1.0
    while waited < GAP_MAX_S:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(GAP_S)
        dt = time.perf_counter() - t0
        share = (time.process_time() - c0) / dt
        waited += dt
        if share < QUIET:
            break
    return share


def _block_runs(seconds_per_run: float) -> int:
    """Runs per block: about 0.4 s of work, between 5 and 20 runs."""
    return max(5, min(20, int(0.4 / max(seconds_per_run, 1e-6))))


def child(artifact: str, model: str, inputs: str, rounds: int, n_threads: int, untuned: str | None = None) -> None:
    import time

    import numpy as np

    import woodpecker

    cm = woodpecker.load(artifact)
    baseline = woodpecker.load(untuned) if untuned else None
    with open(model, "rb") as f:
        sess = ort_session(f.read(), n_threads)
    with np.load(inputs) as saved:
        feed = {k: saved[k] for k in saved.files}
    ort_feed = {i.name: feed[i.name] for i in sess.get_inputs()}
    ours = next(iter(cm.run(feed).values()))
    reference = sess.run(None, ort_feed)[0]
    if not outputs_agree(reference, ours):
        raise SystemExit("woodpecker and onnxruntime compute different outputs")
    runs = [cm.runner(feed), lambda: sess.run(None, ort_feed)]
    if baseline is not None:
        if not outputs_agree(reference, next(iter(baseline.run(feed).values()))):
            raise SystemExit("woodpecker's untuned build and onnxruntime compute different outputs")
        runs.append(baseline.runner(feed))
    t0 = time.perf_counter()
    for run in runs:
        for _ in range(3):
            run()
    n = _block_runs((time.perf_counter() - t0) / (3 * len(runs)))
    shares: list[float] = []
    roundtrips: list[float] = []

    def before_block() -> None:
        shares.append(_quiesce())
        roundtrips.append(core_roundtrip_ns() or 0.0)

    timed_ms = alternated_blocks(runs, rounds, n, before_block=before_block)
    sample = {"woodpecker_ms": timed_ms[0], "onnxruntime_ms": timed_ms[1], "block_runs": n,
              "gap_cpu_share_max": max(shares), "roundtrip_ns": roundtrips,
              "split_l3_share": split_l3_share(roundtrips)}
    if baseline is not None:
        sample["untuned_ms"] = timed_ms[2]
    print(json.dumps(sample))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default", help="zoo names and sets, comma-separated (as e2e.py)")
    ap.add_argument("--processes", type=int, default=6, help="fresh processes per model")
    ap.add_argument("--rounds", type=int, default=8, help="rounds per process (a block of each runtime per round)")
    ap.add_argument("--db", default=None, help="records database: also time the tuned build (three builds per process)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=3, metavar=("ARTIFACT", "MODEL", "INPUTS"), help=argparse.SUPPRESS)
    ap.add_argument("--untuned", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    n_threads = threads()
    if args.child:
        child(*args.child, args.rounds, n_threads, args.untuned)
        return

    import numpy as np

    import woodpecker
    from e2e import inputs_for, model_names
    from woodpecker import models

    print(f"machine: {machine()}; threads per runtime: {n_threads}; {args.processes} processes per model, "
          f"{args.rounds} rounds of a block of each runtime; woodpecker's build "
          f"{'tuned (' + args.db + ') and untuned' if args.db else 'untuned'}, own kernels only")
    rows = []
    for name in model_names(args.models):
        proto = models.build(name)
        build = woodpecker.compile(proto, db=args.db, vendor=False)
        with tempfile.TemporaryDirectory() as work:
            artifact, model = os.path.join(work, "model.wpk"), os.path.join(work, "model.onnx")
            inputs, untuned = os.path.join(work, "inputs.npz"), []
            build.save(artifact)
            if args.db:
                untuned = ["--untuned", os.path.join(work, "untuned.wpk")]
                woodpecker.compile(proto, vendor=False).save(untuned[1])
            np.savez(inputs, **inputs_for(name, build))
            with open(model, "wb") as f:
                f.write(proto.SerializeToString())
            samples = []
            for _ in range(args.processes):
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", artifact, model, inputs,
                                      "--rounds", str(args.rounds), *untuned], capture_output=True, text=True,
                                     check=True)
                samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
        ratios = [s["onnxruntime_ms"] / s["woodpecker_ms"] for s in samples]
        lo, hi = quartiles(ratios)
        tuned = sum(1 for k in build.kernels if k.origin == "tuned")
        row = {"model": name, "tuned_kernels": f"{tuned}/{len(build.kernels)}", "processes": samples,
               "ratio": statistics.median(ratios), "ratio_p25": lo, "ratio_p75": hi,
               "woodpecker_ms": statistics.median(s["woodpecker_ms"] for s in samples),
               "onnxruntime_ms": statistics.median(s["onnxruntime_ms"] for s in samples),
               "gap_cpu_share_max": max(s["gap_cpu_share_max"] for s in samples),
               "split_l3_share": statistics.mean(s["split_l3_share"] for s in samples)}
        gain = ""
        if args.db:
            gains = [s["untuned_ms"] / s["woodpecker_ms"] for s in samples]
            glo, ghi = quartiles(gains)
            row.update(untuned_ms=statistics.median(s["untuned_ms"] for s in samples),
                       tuning_gain=statistics.median(gains), tuning_gain_p25=glo, tuning_gain_p75=ghi)
            gain = (f"untuned {row['untuned_ms']:8.2f} ms, untuned/tuned per process {row['tuning_gain']:.3f}x "
                    f"({glo:.3f}-{ghi:.3f}); ")
        rows.append(row)
        print(f"{name:14s} woodpecker {row['woodpecker_ms']:8.2f} ms  onnxruntime {row['onnxruntime_ms']:8.2f} ms "
              f"(medians over processes)  {gain}ort/woodpecker per process {row['ratio']:.3f}x ({lo:.3f}-{hi:.3f}); "
              f"largest CPU share in a gap {row['gap_cpu_share_max']:.1%}; blocks with the vCPUs on separate L3s "
              f"{row['split_l3_share']:.0%}", flush=True)
    print(f"geometric mean of the per-process medians ort/woodpecker: {geomean([r['ratio'] for r in rows]):.3f}x")
    if args.db:
        print(f"geometric mean of the per-process medians untuned/tuned: "
              f"{geomean([r['tuning_gain'] for r in rows]):.3f}x")
    write_results(args.json, rows, n_threads, processes=args.processes, rounds=args.rounds, db=args.db)


if __name__ == "__main__":
    main()
