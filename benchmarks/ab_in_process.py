"""Two builds of one model, alternated inside each of several fresh processes: the ratio a pass or schedule rule
buys, free of the process-mode noise of these VMs.

    python benchmarks/ab_in_process.py --models shufflenet_v2,shufflenet_v1 --rule blocked-shuffle [--processes 8]
                                       [--rounds 10] [--json out.json]

Why: these shared VMs run in a fast or a slow mode that lasts tens of seconds (ShuffleNetV2's per-process medians
2.6 and 4.8 ms for one artifact in one run): the host moves the VM's two vCPUs between core complexes, and while they
sit on different ones they share no L3 (common.core_roundtrip_ns: ~350 ns instead of ~60). Two builds timed in
separate processes (pass_ablation.py) differ by which modes their processes drew as much as by the change. Here both
builds share each process's modes; the share of blocks that ran with the vCPUs apart is reported.

Method: the model is compiled with the rule as shipped ("with") and as it stood before ("without"; the --rule
names of pass_ablation.py), both saved; each of --processes fresh processes loads the two artifacts as a user
would, checks that their outputs agree, warms both up, then times --rounds rounds, each a block of 20 runs of one
build then 20 of the other, the order alternating by round; the process's figure per build is the median of its
rounds' medians, and its ratio is without / with. The result is the median of the per-process ratios with their
quartiles, beside the builds' median times (which do carry the modes). Woodpecker's own kernels only (no planner).
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
    alternated_blocks, core_roundtrip_ns, machine, outputs_agree, quartiles, split_l3_share, threads, write_results)

BLOCK_RUNS = 20  # runs per block; a block of one build, then one of the other


def child(with_path: str, without_path: str, rounds: int) -> None:
    import woodpecker

    builds = [woodpecker.load(with_path), woodpecker.load(without_path)]
    feed = builds[0].random_inputs(0)
    outs = [next(iter(b.run(feed).values())) for b in builds]
    if not outputs_agree(outs[0], outs[1]):
        raise SystemExit("the two builds compute different outputs")
    runs = [b.runner(feed) for b in builds]
    for run in runs:
        for _ in range(5):
            run()
    roundtrips: list[float] = []
    with_ms, without_ms = alternated_blocks(runs, rounds, BLOCK_RUNS,
                                            before_block=lambda: roundtrips.append(core_roundtrip_ns() or 0.0))
    print(json.dumps({"with_ms": with_ms, "without_ms": without_ms, "roundtrip_ns": roundtrips,
                      "split_l3_share": split_l3_share(roundtrips)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shufflenet_v2")
    ap.add_argument("--rule", required=True, help="a --rule of pass_ablation.py")
    ap.add_argument("--processes", type=int, default=8, help="fresh processes")
    ap.add_argument("--rounds", type=int, default=10, help="rounds per process (a block of each build per round)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=2, metavar=("WITH", "WITHOUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.rounds)
        return

    from pass_ablation import compile_both, rule_patch
    from woodpecker import models

    patch = rule_patch(args.rule)
    n_threads = threads()
    print(f"machine: {machine()}; threads: {n_threads}; {args.processes} processes, {args.rounds} rounds of "
          f"{BLOCK_RUNS} runs per build each")
    rows = []
    for name in args.models.split(","):
        shipped, before_build = compile_both(models.build(name), *patch)
        with tempfile.TemporaryDirectory() as work:
            paths = [os.path.join(work, "with.wpk"), os.path.join(work, "without.wpk")]
            shipped.save(paths[0])
            before_build.save(paths[1])
            samples = []
            for _ in range(args.processes):
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *paths,
                                      "--rounds", str(args.rounds), "--rule", args.rule],
                                     capture_output=True, text=True, check=True)
                samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
        ratios = [s["without_ms"] / s["with_ms"] for s in samples]
        lo, hi = quartiles(ratios)
        med_with = statistics.median(s["with_ms"] for s in samples)
        med_without = statistics.median(s["without_ms"] for s in samples)
        calls = {"with": len(shipped.program.calls), "without": len(before_build.program.calls)}
        split = statistics.mean(s["split_l3_share"] for s in samples)
        rows.append({"model": name, "rule": args.rule, "calls": calls, "processes": samples,
                     "ratio": statistics.median(ratios), "ratio_p25": lo, "ratio_p75": hi, "split_l3_share": split})
        print(f"{name}: with {args.rule} {med_with:.2f} ms, without {med_without:.2f} ms (medians over processes); "
              f"without / with per process {statistics.median(ratios):.3f}x ({lo:.3f}-{hi:.3f}); "
              f"{calls['without']} -> {calls['with']} kernel calls; blocks with the vCPUs on separate L3s "
              f"{split:.0%}", flush=True)
    write_results(args.json, rows, n_threads, processes=args.processes, rounds=args.rounds)


if __name__ == "__main__":
    main()
