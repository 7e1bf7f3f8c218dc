"""Differential fuzzing campaign: woodpecker against onnxruntime on seeded random graphs (woodpecker.testing.fuzz).

    python scripts/fuzz.py --count 500                      # seeds 0..499
    python scripts/fuzz.py --start 10000 --count 1000 --out fuzz-failures --workers 2
    python scripts/fuzz.py --seeds 123,456 --minimize       # rerun given seeds, shrink each failing model

Each graph is generated, compiled and run in a worker process (woodpecker.measure.pool.WorkerPool), so that a
crash or a hang of one graph is reported and the campaign goes on. Every mismatch or crash is printed on one line
and written to the output folder: <seed>.onnx, <seed>.npz (the inputs), and with --minimize <seed>.min.onnx.
A rerun of one seed is deterministic: `python scripts/fuzz.py --seeds N`.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import sys
import time

# woodpecker's own kernels, not the planner's vendor substitutes (which would compare onnxruntime with itself)
os.environ.setdefault("WOODPECKER_VENDOR", "0")


def _save(folder: pathlib.Path, seed: int, max_nodes: int, minimize: bool) -> str:
    import numpy as np
    import onnx

    from woodpecker.testing import fuzz

    folder.mkdir(parents=True, exist_ok=True)
    case = fuzz.generate(seed, max_nodes)
    onnx.save(case.model, folder / f"{seed}.onnx")
    np.savez(folder / f"{seed}.npz", **case.inputs)
    if not minimize:
        return str(folder / f"{seed}.onnx")

    def fails(model, inputs) -> bool:
        return fuzz.check(fuzz.FuzzCase(seed, model, inputs)).status in ("mismatch", "crash")

    small = fuzz.minimize(case.model, case.inputs, fails)
    onnx.save(small, folder / f"{seed}.min.onnx")
    return f"{folder / f'{seed}.min.onnx'} ({len(small.graph.node)} nodes: {' '.join(n.op_type for n in small.graph.node)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--count", type=int, default=200, help="number of graphs")
    parser.add_argument("--seeds", help="comma-separated seeds to run instead of a range")
    parser.add_argument("--max-nodes", type=int, default=15)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per graph")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("fuzz-failures"))
    parser.add_argument("--minimize", action="store_true", help="shrink each failing model (in this process)")
    args = parser.parse_args()

    from woodpecker.measure.pool import WorkerPool
    from woodpecker.testing import fuzz

    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(range(args.start, args.start + args.count))
    counts: collections.Counter[str] = collections.Counter()
    failing: list[int] = []
    t0 = time.perf_counter()
    batch = max(1, args.workers) * 4
    with WorkerPool(args.workers, {"WOODPECKER_VENDOR": "0"}) as pool:
        for i in range(0, len(seeds), batch):
            chunk = seeds[i : i + batch]
            for seed, res in zip(chunk, pool.map(fuzz.check_seed, [(s, args.max_nodes) for s in chunk], args.timeout)):
                if res.error is not None:  # the worker died or hung: a crash of woodpecker (or of onnxruntime)
                    outcome = fuzz.Outcome(seed, "crash", res.error)
                else:
                    outcome = res.value
                counts[outcome.status] += 1
                if outcome.status in ("mismatch", "crash", "invalid"):
                    print(f"seed {seed}: {outcome.status}: {outcome.detail}  [{' '.join(outcome.ops)}]", flush=True)
                if outcome.status in ("mismatch", "crash"):
                    failing.append(seed)
            done = min(i + batch, len(seeds))
            print(f"  {done}/{len(seeds)} graphs, {dict(counts)}, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    for seed in failing:
        print(f"seed {seed}: saved {_save(args.out, seed, args.max_nodes, args.minimize)}")
    print(f"{len(seeds)} graphs in {time.perf_counter() - t0:.0f} s: {counts['ok']} agree, {counts['mismatch']} "
          f"mismatches, {counts['crash']} crashes, {counts['invalid']} invalid (refused by onnxruntime)")
    sys.exit(1 if failing else 0)


if __name__ == "__main__":
    main()
