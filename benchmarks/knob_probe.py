"""One layer's kernel with the default knobs against variants of them, and onnxruntime, in one process: the probe for
a change of `woodpecker.schedule.cpu_defaults.default_knobs`.

    python benchmarks/knob_probe.py conv 384,256,13 '[{"tile_x": 7}, {"tile_kb": 2, "tile_x": 7}]'
    python benchmarks/knob_probe.py dense 1,4096,1000 '[{"tile_nb": 1}]'
    python benchmarks/knob_probe.py conv 58,58,28,1 '[{"tile_k": 8}]'      # 1x1
    python benchmarks/knob_probe.py conv 58,58,28,3,58 '[{"tile_k": 8}]'   # 3x3 depthwise
    python benchmarks/knob_probe.py bmm 12,197,64 '[{"tile_n": 1}]'
    python benchmarks/knob_probe.py layernorm 197,768 '[{"vector_reduce": 0}]'

bmm B,M,K: attention scores X @ X^T * 0.125 (X: B x M x K). layernorm M,N: over the last axis of M x N.
conv C,K,HW[,R[,GROUPS]]: an RxR (default 3x3) stride-1 convolution with bias (benchmarks/search.py's layer model); dense M,K,N: MatMul + Add.
Method: every variant is built and timed by woodpecker's runner (hot loop: 5 repeats of at least 20 ms, median,
output checked against the reference first), in --rounds rounds, the variants in the same order each round;
onnxruntime's figure (median of 200 runs, 2 threads) is taken after the runner's process has finished. Ratios are
against the default of the same round. One process is one sample: a process lands in a fast or slow mode for its
whole life on shared VMs, so run it several times before believing a few per cent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _params(kind: str, v: list[int]) -> dict[str, int]:
    if kind == "conv":  # C,K,HW[,R[,GROUPS]]
        return dict(c=v[0], k=v[1], hw=v[2], r=v[3] if len(v) > 3 else 3, stride=1, groups=v[4] if len(v) > 4 else 1)
    if kind == "bmm":
        return dict(b=v[0], m=v[1], k=v[2])
    if kind == "layernorm":
        return dict(m=v[0], n=v[1])
    return dict(m=v[0], k=v[1], n=v[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("conv", "dense", "bmm", "layernorm"))
    ap.add_argument("shape", help="conv: C,K,HW[,R[,GROUPS]]; dense: M,K,N; bmm: B,M,K; layernorm: M,N")
    ap.add_argument("variants", help="JSON list of knob overrides, each applied to the default")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    from search import layer_model, main_task, ort_latency_us

    from woodpecker.hw.host import target_dict
    from woodpecker.measure.measurer import MeasureOptions, Measurer
    from woodpecker.measure.reference import reference_io
    from woodpecker.space.space import space_for_task

    model = layer_model(args.kind, _params(args.kind, [int(v) for v in args.shape.split(",")]))
    from woodpecker.targets import resolve

    # the kernel `woodpecker compile` builds for this host (3x3 stride-1 layers by Winograd, padded channel blocks)
    lowered, task = main_task(model, resolve("host").pass_options())
    default = dict(space_for_task(task).default)
    overrides = [{}] + list(json.loads(args.variants))
    points = [{**default, **o} for o in overrides]
    print(f"{task.name} {task.family}: default {default}")
    measurer = Measurer(target_dict(), options=MeasureOptions(cold_cache=False))
    node, call = lowered.example(task.key)
    measurer.set_reference(task, *reference_io(task, node, lowered.graph, call.args))
    figures: list[list[float]] = [[] for _ in points]
    try:
        for _ in range(args.rounds):
            for i, r in enumerate(measurer.measure(task, points)):
                figures[i].append(r.cost * 1e6 if r.ok else float("nan"))
    finally:
        measurer.close()
    ort_us = ort_latency_us(model)
    for o, xs in zip(overrides, figures):
        ratios = [d / x for d, x in zip(figures[0], xs)]
        print(f"{json.dumps(o) if o else 'default':40s} {statistics.median(xs):9.1f} us  "
              f"default/this {statistics.median(ratios):.2f}x  rounds {[round(x) for x in xs]}")
    print(f"{'onnxruntime':40s} {ort_us:9.1f} us  default/onnxruntime {ort_us / statistics.median(figures[0]):.2f}x")


if __name__ == "__main__":
    main()
