"""What backing the executor's arena and constants with transparent huge pages buys, whole model: the same
artifact run with huge pages (as it ships) and with ordinary 4 KiB pages (WOODPECKER_HUGE_PAGES=0), and
onnxruntime, timed in the same run.

    python benchmarks/huge_pages.py [--models resnet18,vgg19,inception_v1,resnet50] [--rounds 10] [--per-round 6]
                                    [--json out.json]

Method: each model is compiled once by woodpecker with its default schedules and without the planner (its own
kernels only) and saved; the artifact is loaded in fresh processes with and without huge pages, and onnxruntime
(all graph optimizations, MLAS) in its own, one process per round per contender, rotated
(woodpecker.measure.isolated); a figure is the median of the per-process medians with their quartiles as the
spread, and the verdict says whether a difference is beyond the spread (woodpecker.measure.decision). Outputs are
checked against onnxruntime first. Why fresh processes matter here above all: page placement is fixed for a
process's life, so one process is one draw of it, and a within-process A/B cannot see what varies between draws.
"""

from __future__ import annotations

import argparse
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import compare_line, machine, ort_session, threads, time_against_onnxruntime, write_results  # noqa: E402
from e2e import checked, inputs_for  # noqa: E402


def thp_mode() -> str:
    """The kernel's transparent huge page policy: the bracketed word of its sysfs file ("unknown" off Linux)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return "unknown"
    return text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,vgg19,inception_v1,resnet50")
    ap.add_argument("--rounds", type=int, default=10, help="fresh processes per contender")
    ap.add_argument("--per-round", type=int, default=6, help="timed runs per process")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import woodpecker
    from woodpecker import models

    n_threads = threads()
    print(f"machine: {machine()}; threads per contender: {n_threads}; {args.rounds} processes per contender; "
          f"transparent huge pages: {thp_mode()}")
    rows = []
    huge, small = "huge pages", "4 KiB pages"
    for name in args.models.split(","):
        proto = models.build(name)
        cm = woodpecker.compile(proto, vendor=False)
        feed = inputs_for(name, cm)
        ref = ort_session(proto.SerializeToString(), n_threads).run(None, feed)[0]
        timings = time_against_onnxruntime(proto, {huge: cm, small: cm}, feed, n_threads, args.rounds,
                                           args.per_round, env={small: {"WOODPECKER_HUGE_PAGES": "0"}})
        samples = {t.name: t.samples for t in checked(name, timings, ref)}
        on, off, ort = samples[huge], samples[small], samples["onnxruntime"]
        rows.append({"model": name, **{k: v.to_json() for k, v in samples.items()},
                     "speedup": off.median_ms / on.median_ms, "vs_onnxruntime": ort.median_ms / on.median_ms,
                     "off_vs_onnxruntime": ort.median_ms / off.median_ms})
        print(f"{name}:\n  {compare_line(on, off)}\n  {compare_line(on, ort)}\n  {compare_line(off, ort)}", flush=True)
    write_results(args.json, rows, n_threads, rounds=args.rounds, thp=thp_mode())


if __name__ == "__main__":
    main()
