"""Tuned over default, per layer, on every simulated target class: what the search gains where the time is
estimated (GPU: analytical roofline; RISC-V/MCU: qemu + counting plugin + cycle model).

Method: the fixed suite is ResNet-18 at a small resolution (`--image-size`, default 32, so that qemu runs stay
short), one layer per distinct kernel. For each target, woodpecker.tuner.tune runs the GA with `--trials`
measurements in a fresh records database; the first measurement of every layer is its default schedule, so the
speedup printed per layer is default estimate / best estimate from the same simulator in the same run. The
numbers are simulated device times, labelled as such; they are not wall-clock times on this machine.

    python benchmarks/targets.py [--targets p100,a100,rv64gcv128,rv32imf] [--trials 200] [--image-size 32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="p100,a100,rv64gcv128,rv32imf")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--searcher", default="ga")
    ap.add_argument("--out", default="benchmarks/results/targets.json")
    args = ap.parse_args()

    from woodpecker import models
    from woodpecker.tuner import tune

    model = models.build("resnet18", image_size=args.image_size)
    out = {"suite": f"resnet18@{args.image_size}", "trials": args.trials, "searcher": args.searcher, "targets": {}}
    for target in args.targets.split(","):
        with tempfile.TemporaryDirectory(prefix="wp-targets-") as tmp:
            report = tune(model, target, searcher=args.searcher, trials=args.trials,
                          db=os.path.join(tmp, "records.db"), seed=0)
        rows = []
        print(f"\n{target} ({report.device.profile}, {'simulated' if report.device.simulated else 'real'}): "
              f"{report.trials} trials in {report.seconds:.0f} s")
        print(f"  {'layer':<36} {'family':<14} {'trials':>6} {'default us':>11} {'best us':>10} {'speedup':>8}")
        for t in report.tasks:
            if not t.default_us or not t.best_us:
                continue
            speedup = t.default_us / t.best_us
            rows.append({"layer": t.name, "family": t.family, "trials": t.trials, "default_us": t.default_us,
                         "best_us": t.best_us, "speedup": speedup})
            print(f"  {t.name:<36} {t.family:<14} {t.trials:>6} {t.default_us:>11.1f} {t.best_us:>10.1f} "
                  f"{speedup:>7.2f}x")
        geo = _geomean([r["speedup"] for r in rows])
        # layers the budget reached beyond their default (the rest report 1.00x because they were not searched)
        searched = _geomean([r["speedup"] for r in rows if r["trials"] > 1])
        print(f"  model (sum over calls): {report.default_ms:.3f} -> {report.best_ms:.3f} ms simulated "
              f"({report.default_ms / report.best_ms:.2f}x); geometric mean per layer {geo:.2f}x, "
              f"over the {sum(r['trials'] > 1 for r in rows)} searched layers {searched:.2f}x")
        out["targets"][target] = {"layers": rows, "default_ms": report.default_ms, "best_ms": report.best_ms,
                                  "geomean_layer_speedup": geo, "geomean_searched_layer_speedup": searched,
                                  "seconds": report.seconds}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
