"""What switching runtimes costs between two calls of a planned model, with spinning and with passive wait policies.

    python benchmarks/switch_cost.py [--model resnet18?image_size=112] [--call 8] [--processes 5] [--json out.json]

Method: the model is compiled once (woodpecker's own kernels) and one call is picked (`--call`, default the middle
one); its region is also bound as an onnxruntime session, PyTorch (oneDNN) and numpy call on the same buffers, as
the planner binds them. Each sample is a fresh process (this script with --worker) started with one wait-policy
mode, modes rotated, `--processes` per mode. In a process, on the call's real buffers:
    ours_us          woodpecker's kernel in a loop of its own
    <vendor>_us      the vendor's call in a loop of its own
    pair_us          ours then the vendor, alternating (two switches per pair)
    switch_us        (pair - ours - vendor) / 2: the added latency of one switch
    after_block      ours timed once right after 4 runs of the vendor, over ours alone: the bias of the planner's
                     block timing before this change (a kernel timed after a vendor block read slow)
    in_blocks        ours timed as the planner times choices (measure.interleaved: blocks of 4 alternating with the
                     vendor's blocks) over ours in blocks of its own, same process
Modes: "spinning" (every runtime's default: TVM's pool and OpenMP spin after a call), "passive"
(OMP_WAIT_POLICY=PASSIVE, TVM_THREAD_POOL_SPIN_COUNT=0), "passive+nobind" (TVM_BIND_THREADS=0 too: thread
placement), "omp-passive" (TVM's pool keeps its default spin: config.PASSIVE_WAITS, how the planner times calls
and how a planned model runs), "omp-passive+nobind" (the same, TVM's workers not pinned to cores) and
"tvm-spin-1000" (OpenMP passive, TVM's spin cut to 1000). The per-call
onnxruntime sessions never spin (allow_spinning=0) in any mode, as in the planner. Figures are
medians of per-process medians (woodpecker.measure.decision), with the quartiles of the per-process figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODES = {
    "spinning": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0"},
    "passive+nobind": {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0", "TVM_BIND_THREADS": "0"},
    "omp-passive": {"OMP_WAIT_POLICY": "PASSIVE"},  # TVM's pool keeps spinning (its launches stay cheap)
    "omp-passive+nobind": {"OMP_WAIT_POLICY": "PASSIVE", "TVM_BIND_THREADS": "0"},
    "tvm-spin-1000": {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "1000"},
}
VENDORS = ("onnxruntime", "torch", "numpy")


def _loop_us(calls, reps: int) -> float:
    from woodpecker.planner.percall import loop_s  # the planner's own switch-cost loop

    return loop_s(calls, reps) * 1e6


def worker(work: str, call: int, mode: str, reps: int) -> dict:
    """One process's figures (run with the mode's environment set before anything loaded)."""
    import numpy as np

    import woodpecker
    from woodpecker.planner.choices import GeneratedChoice
    from woodpecker.runtime.vendors import make_vendor
    from woodpecker.planner.regions import Region

    cm = woodpecker.load(os.path.join(work, "model.wpk"))
    with open(os.path.join(work, "region.json")) as f:
        region = Region.from_json(json.load(f))
    constants = dict(np.load(os.path.join(work, "constants.npz")))
    ex = cm.executor
    ex.set_inputs(cm.random_inputs(0))
    ex.execute()
    ins = [ex.view(v, region.types[v].shape) for v in region.inputs]
    out_t = region.types[region.output]
    func, args = ex._calls[call]
    ours = GeneratedChoice(func, args).bind(ins, ex.view(region.output, out_t.shape))
    threads = int(os.environ.get("TVM_NUM_THREADS") or os.cpu_count() or 1)
    row: dict = {"mode": mode, "ours_us": _loop_us([ours], reps)}
    for kind in VENDORS:
        try:
            theirs = make_vendor(kind, region, constants, threads).bind(ins, ex.scratch(out_t.shape, out_t.dtype))
        except Exception as err:  # noqa: BLE001 - a vendor that cannot express the call is left out
            row[kind] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
            continue
        alone_ours, alone_theirs = _loop_us([ours], reps), _loop_us([theirs], reps)
        pair = _loop_us([ours, theirs], reps)
        after = []
        for _ in range(reps):
            for _ in range(4):
                theirs()
            t0 = time.perf_counter()
            ours()
            after.append((time.perf_counter() - t0) * 1e6)
        # the planner's block timing (measure.interleaved): ours in blocks alternating with the vendor's blocks,
        # over ours in blocks of its own in the same process
        from woodpecker.measure.interleaved import time_interleaved

        blocks_alone = time_interleaved({"ours": ours}, 20)["ours"]
        blocks_mixed = time_interleaved({"ours": ours, kind: theirs}, 20)["ours"]
        row[kind] = {"vendor_us": alone_theirs, "pair_us": pair, "switch_us": (pair - alone_ours - alone_theirs) / 2,
                     "after_block": statistics.median(after) / alone_ours, "in_blocks": blocks_mixed / blocks_alone}
    return row


def prepare(work: str, model: str, call: int | None) -> int:
    import numpy as np

    import woodpecker
    from woodpecker import models
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.planner.regions import regions_of
    from woodpecker.targets import resolve

    name, _, query = model.partition("?")
    kwargs = {k: int(v) for k, _, v in (p.partition("=") for p in query.split("&") if p)}
    proto = models.build(name, **kwargs)
    cm = woodpecker.compile(proto, vendor=False)
    cm.save(os.path.join(work, "model.wpk"))
    lowered = lower_graph(optimize(import_onnx(proto), resolve("host").pass_options(None)))
    regions = regions_of(lowered)
    call = len(regions) // 2 if call is None else call
    region = regions[call]
    with open(os.path.join(work, "region.json"), "w") as f:
        json.dump(region.to_json(), f)
    np.savez(os.path.join(work, "constants.npz"), **{k: lowered.graph.constants[k] for k in region.constant_names})
    print(f"call {call} of {len(regions)}: {region.node} ({cm.program.calls[call].func})", flush=True)
    return call


def _stats(xs) -> dict:
    from woodpecker.measure.decision import ProcessSamples

    s = ProcessSamples("", tuple(xs))  # its statistics in whatever unit the figures have
    return {"median": s.median_ms, "p25": s.low_ms, "p75": s.high_ms, "per_process": list(xs)}


def summarize(rows: list[dict]) -> dict:
    out: dict = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        m = out[mode] = {"ours_us": _stats(r["ours_us"] for r in mine)}
        for kind in VENDORS:
            ok = [r[kind] for r in mine if "error" not in r[kind]]
            if not ok:
                m[kind] = {"error": mine[0][kind]["error"]}
                continue
            m[kind] = {f: _stats(x[f] for x in ok) for f in ("vendor_us", "pair_us", "switch_us", "after_block",
                                                              "in_blocks")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18?image_size=112")
    ap.add_argument("--call", type=int, default=None)
    ap.add_argument("--processes", type=int, default=5)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--json", default=None)
    ap.add_argument("--modes", default=",".join(MODES), help="wait-policy modes to run, comma-separated")
    ap.add_argument("--worker", nargs=3, metavar=("WORK", "CALL", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        work, call, mode = args.worker
        print(json.dumps(worker(work, int(call), mode, args.reps)))
        return
    with tempfile.TemporaryDirectory(prefix="switch-cost-") as work:
        call = prepare(work, args.model, args.call)
        rows = []
        modes = [m for m in args.modes.split(",") if m]
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise SystemExit(f"unknown modes {unknown}; modes: {', '.join(MODES)}")
        for p in range(args.processes):
            for mode in modes[p % len(modes):] + modes[:p % len(modes)]:
                env = {**os.environ, **MODES[mode]}
                proc = subprocess.run([sys.executable, __file__, "--reps", str(args.reps), "--worker", work,
                                       str(call), mode], env=env, capture_output=True, text=True, check=True)
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    summary = summarize(rows)
    for mode, m in summary.items():
        print(f"{mode:15s} woodpecker alone {m['ours_us']['median']:8.1f} us")
        for kind in VENDORS:
            v = m[kind]
            if "error" in v:
                print(f"{'':15s} {kind:12s} not available: {v['error']}")
                continue
            s = v["switch_us"]
            print(f"{'':15s} {kind:12s} alone {v['vendor_us']['median']:8.1f} us  pair {v['pair_us']['median']:8.1f} us  "
                  f"switch {s['median']:7.1f} us ({s['p25']:.1f}-{s['p75']:.1f})  "
                  f"ours after a block of it {v['after_block']['median']:.2f}x alone, "
                  f"in blocks alternating with it {v['in_blocks']['median']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "call": call, "processes": args.processes, "reps": args.reps,
                       "summary": summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
