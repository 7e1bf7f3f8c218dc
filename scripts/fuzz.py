"""Differential fuzzing campaign: woodpecker against onnxruntime on seeded random graphs (woodpecker.testing.fuzz).

    python scripts/fuzz.py --count 500                      # seeds 0..499
    python scripts/fuzz.py --start 10000 --count 1000 --out fuzz-failures --workers 2
    python scripts/fuzz.py --seeds 123,456 --minimize       # rerun given seeds, shrink each failing model
    python scripts/fuzz.py --count 10000 --workers 1 --state benchmarks/results/fuzz/state.jsonl \
        --summary benchmarks/results/fuzz                   # a resumable campaign: rerun the same command to go on
    python scripts/fuzz.py --count 10000 --recheck --state benchmarks/results/fuzz/state.jsonl \
        --summary benchmarks/results/fuzz                   # rerun the seeds that failed: are they fixed?

Each graph is generated, compiled and run in a worker process (woodpecker.measure.pool.WorkerPool), so that a
crash or a hang of one graph is reported and the campaign goes on. Every mismatch or crash is printed on one line
and written to the output folder: <seed>.onnx, <seed>.npz (the inputs), and with --minimize <seed>.min.onnx.
A rerun of one seed is deterministic: `python scripts/fuzz.py --seeds N`.

With --state FILE every result is appended to FILE as it comes (woodpecker.testing.fuzz_state), and the seeds
already there are skipped: a killed campaign loses at most the graphs in flight. --summary DIR writes DIR/summary.json
and DIR/README.md (graphs, ok, mismatches found, fixed, remaining, invalid, crashes, seconds) from the state.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import sys
import time

# woodpecker's own kernels, not the planner's vendor substitutes (which would compare onnxruntime with itself)
os.environ.setdefault("WOODPECKER_VENDOR", "0")


def _save(folder: pathlib.Path, seed: int, max_nodes: int, minimize: bool, block: str | None) -> str:
    import numpy as np
    import onnx

    from woodpecker.testing import fuzz

    folder.mkdir(parents=True, exist_ok=True)
    if block is None:
        case = fuzz.generate(seed, max_nodes)
    else:
        from woodpecker.testing.fuzz_blocks import generate_block

        case = generate_block(seed, block)
    onnx.save(case.model, folder / f"{seed}.onnx")
    np.savez(folder / f"{seed}.npz", **case.inputs)
    if not minimize:
        return str(folder / f"{seed}.onnx")

    def fails(model, inputs) -> bool:
        return fuzz.check(fuzz.FuzzCase(seed, model, inputs)).status in ("mismatch", "crash")

    small = fuzz.minimize(case.model, case.inputs, fails)
    onnx.save(small, folder / f"{seed}.min.onnx")
    return f"{folder / f'{seed}.min.onnx'} ({len(small.graph.node)} nodes: {' '.join(n.op_type for n in small.graph.node)})"


def _write_summary(folder: pathlib.Path, state, planned: list[int]) -> dict:
    summary = state.summary(planned)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    span = f"Seeds {planned[0]}..{planned[-1]} ({len(planned)} graphs planned)" if planned else "Graphs"
    lines = [
        "# Differential fuzzing campaign (woodpecker against onnxruntime)",
        "",
        f"{span} of woodpecker.testing.fuzz_graphs "
        "(single ops and the blocks of woodpecker.testing.fuzz_blocks), each compiled with woodpecker "
        "(vendor kernels off) and compared with onnxruntime. Resume or refresh with the same command:",
        "",
        f"    python scripts/fuzz.py --start {planned[0] if planned else 0} --count {len(planned)} --workers 1 "
        "--timeout 120 \\",
        f"        --state {os.path.relpath(state.path)} --summary {os.path.relpath(folder)}",
        "",
        "| graphs | ok | mismatches found | crashes found | fixed | remaining | invalid | seconds | seeds left |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {summary['graphs']} | {summary['ok']} | {summary['mismatches_found']} | {summary['crashes_found']} "
        f"| {summary['fixed']} | {summary['remaining']} | {summary['invalid']} | {summary['seconds']} "
        f"| {summary.get('seeds_left', '-')} |",
        "",
        "`fixed`: seeds that failed in the campaign and pass on `--recheck` (their fix has a regression test in "
        "tests/fuzz/test_fuzz_regressions.py); `remaining`: still failing. `invalid`: graphs onnxruntime refused "
        "(a generator bug or an onnxruntime one, not woodpecker's). state.jsonl holds one line per graph run.",
        "",
    ]
    if (folder / "NOTES.md").exists():
        lines += ["What each finding was and how it was fixed: [NOTES.md](NOTES.md).", ""]
    found = sorted(summary["failing_seeds"] + summary["fixed_seeds"]
                   + [s for s, rec in state.first.items() if rec["status"] == "invalid"])
    if found:
        lines += ["| seed | found | now |", "|---|---|---|"]
        for seed in found:
            first, latest = state.first[seed], state.latest[seed]
            now = "fixed" if seed in summary["fixed_seeds"] else f"{latest['status']}: {latest.get('detail', '')}"
            if first["status"] == "invalid" and latest["status"] == "ok":
                now = "ok"
            if latest.get("generator") != first.get("generator"):  # the recheck ran another generator's graph
                now += f" (rechecked on generator {latest.get('generator')}'s graph of the seed)"
            lines.append(f"| {seed} | {first['status']}: {first.get('detail', '')} | {now} |".replace("\n", " "))
        lines.append("")
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")
    return summary


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
    parser.add_argument("--block", help="graphs of one block family of woodpecker.testing.fuzz_blocks "
                        "(attention, squeeze_excite, dense, inception, shape_arithmetic) instead of mixed graphs")
    parser.add_argument("--state", type=pathlib.Path, help="JSON lines of results: appended to, done seeds skipped")
    parser.add_argument("--recheck", action="store_true",
                        help="rerun the seeds failing (or invalid) in --state, record the outcome")
    parser.add_argument("--summary", type=pathlib.Path, help="folder for summary.json and README.md (needs --state)")
    args = parser.parse_args()
    if (args.recheck or args.summary) and not args.state:
        parser.error("--recheck and --summary need --state")
    if args.block and args.state:
        parser.error("--block makes other graphs than the campaign's: run it without --state")

    from woodpecker.measure.pool import WorkerPool
    from woodpecker.testing import fuzz
    from woodpecker.testing.fuzz_state import CampaignState, generator_version

    planned = [int(s) for s in args.seeds.split(",")] if args.seeds else list(range(args.start, args.start + args.count))
    state = CampaignState.load(args.state) if args.state else None
    version = generator_version()
    if state is None:
        seeds = planned
    elif args.recheck:
        seeds = state.failing(invalid=True)
        changed = [s for s in seeds if state.first.get(s, {}).get("generator") not in (None, version)]
        if changed:  # a recheck of such a seed tests the current generator's graph, maybe not the one that failed
            print(f"warning: seeds {changed} failed under another generator version than {version}", file=sys.stderr)
    else:
        seeds = state.todo(planned)
        if len(seeds) < len(planned):
            print(f"{args.state}: {len(planned) - len(seeds)} of {len(planned)} seeds already done, "
                  f"{len(seeds)} to run", file=sys.stderr, flush=True)
    counts: collections.Counter[str] = collections.Counter()
    failing: list[int] = []
    t0 = time.perf_counter()
    batch = max(1, args.workers) * 4
    with WorkerPool(args.workers, {"WOODPECKER_VENDOR": "0"}) as pool:
        for i in range(0, len(seeds), batch):
            chunk = seeds[i : i + batch]
            t_batch = time.perf_counter()
            results = pool.map(fuzz.check_seed, [(s, args.max_nodes, args.block) for s in chunk], args.timeout)
            wall_s = (time.perf_counter() - t_batch) / len(chunk)  # each graph's share of the batch's wall time
            for seed, res in zip(chunk, results):
                if res.error is not None:  # the worker died or hung: a crash of woodpecker (or of onnxruntime)
                    outcome = fuzz.Outcome(seed, "crash", res.error)
                else:
                    outcome = res.value
                counts[outcome.status] += 1
                if outcome.status in ("mismatch", "crash", "invalid"):
                    print(f"seed {seed}: {outcome.status}: {outcome.detail}  [{' '.join(outcome.ops)}]", flush=True)
                if outcome.status in ("mismatch", "crash"):
                    failing.append(seed)
                if state is not None:
                    state.record(seed, outcome.status, outcome.detail, outcome.ops, wall_s, args.recheck, version)
            if args.summary and (i // batch) % 25 == 0:
                _write_summary(args.summary, state, planned)
            done = min(i + batch, len(seeds))
            print(f"  {done}/{len(seeds)} graphs, {dict(counts)}, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    if args.summary:
        print(f"summary: {json.dumps(_write_summary(args.summary, state, planned))}", flush=True)
    for seed in failing:
        print(f"seed {seed}: saved {_save(args.out, seed, args.max_nodes, args.minimize, args.block)}")
    print(f"{len(seeds)} graphs in {time.perf_counter() - t0:.0f} s: {counts['ok']} agree, {counts['mismatch']} "
          f"mismatches, {counts['crash']} crashes, {counts['invalid']} invalid (refused by onnxruntime)")
    sys.exit(1 if failing else 0)


if __name__ == "__main__":
    main()
