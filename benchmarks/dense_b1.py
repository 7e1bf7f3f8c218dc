"""Batch-1 dense layers (the FC layers of AlexNet/VGG and a classifier head): the default schedule's register tile
over several weight panels against one panel (the default before), and onnxruntime's Gemm, in the same processes.

    python benchmarks/dense_b1.py [--processes 5] [--layers 9216x4096,4096x4096,4096x1000,2048x1000]

Method: one process is one sample (a process lands in a fast or slow mode for its whole life on these VMs). Each of
`--processes` fresh processes builds the layer's kernel with both knob sets, times them with woodpecker's runner
(hot loop: 5 repeats of at least 20 ms, median, output checked against the reference first) and times onnxruntime on
the same single-node model (MatMul + Add, median of 200 runs, 2 threads) after woodpecker's runner process has
finished (no pool spins in it). Printed: the median of the per-process medians and their range, the ratios within
each process (median and range), and the weight bandwidth each reaches (weights read once per call: the floor of a
layer whose weights do not fit in the cache).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def one_process(m: int, k: int, n: int) -> dict:
    sys.path.insert(0, HERE)
    from search import layer_model, main_task, ort_latency_us

    from woodpecker.hw.host import target_dict
    from woodpecker.measure.measurer import MeasureOptions, Measurer
    from woodpecker.measure.reference import reference_io
    from woodpecker.space.space import space_for_task

    model = layer_model("dense", dict(m=m, k=k, n=n))
    lowered, task = main_task(model)
    default = dict(space_for_task(task).default)
    points = {"panels": default, "one_panel": {**default, "tile_nb": 1}}
    measurer = Measurer(target_dict(), options=MeasureOptions(cold_cache=False))
    node, call = lowered.example(task.key)
    measurer.set_reference(task, *reference_io(task, node, lowered.graph, call.args))
    try:
        results = measurer.measure(task, list(points.values()))
    finally:
        measurer.close()
    out = {name: (r.cost * 1e6 if r.ok else None) for name, r in zip(points, results)}
    out["onnxruntime"] = ort_latency_us(model)
    out["tile_nb"] = default["tile_nb"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=5)
    ap.add_argument("--layers", default="9216x4096,4096x4096,4096x1000,2048x1000", help="KxN of each M=1 layer")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: "M,K,N", one sample in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_process(*(int(v) for v in args.one.split(",")))))
        return
    env = {**os.environ, "TVM_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0"}
    layers = [tuple(int(v) for v in spec.split("x")) for spec in args.layers.split(",")]
    samples: dict[tuple, list[dict]] = {layer: [] for layer in layers}
    for p in range(args.processes):
        for layer in layers[p % len(layers):] + layers[:p % len(layers)]:  # rotated
            done = subprocess.run([sys.executable, __file__, "--one", f"1,{layer[0]},{layer[1]}"], env=env,
                                  capture_output=True, text=True, check=True)
            samples[layer].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"batch-1 dense, {args.processes} processes each; us: median of per-process medians (min-max)")
    print(f"{'layer (K x N)':>14} {'weights':>8} {'panels/tile':>11} {'one panel':>20} {'panels':>20} "
          f"{'onnxruntime':>20} {'one/panels':>18} {'ort/panels':>18} {'GB/s':>5}")

    def cell(xs):
        return f"{statistics.median(xs):8.1f} ({min(xs):.0f}-{max(xs):.0f})"

    def ratio(xs):
        return f"{statistics.median(xs):.2f}x ({min(xs):.2f}-{max(xs):.2f})"

    for (k, n), rows in samples.items():
        one, new, ort = ([r[key] for r in rows] for key in ("one_panel", "panels", "onnxruntime"))
        mb = k * n * 4 / 1e6
        print(f"{k:>6} x {n:<6} {mb:6.1f}MB {rows[0]['tile_nb']:>11} {cell(one):>20} {cell(new):>20} {cell(ort):>20} "
              f"{ratio([a / b for a, b in zip(one, new)]):>18} {ratio([a / b for a, b in zip(ort, new)]):>18} "
              f"{mb * 1e-3 / (statistics.median(new) * 1e-6):5.0f}")


if __name__ == "__main__":
    main()
