"""Measurement throughput (candidates per second) of the local Measurer, Ray with 1 and 2 worker nodes, and a TVM
RPC device, on the same candidates, in one run.

Method: the candidates are the default and distinct random valid points of the first convolution of ResNet-18
(56x56x64, 3x3), with the same MeasureOptions everywhere (repeat 3, min_repeat_ms 5). Each measurer starts with
a cold build cache (a fresh WOODPECKER_CACHE_DIR per measurer), so builds count; the clock runs from the first
measure_many call to the last result, after the measurer and its workers are up (start-up time is printed
apart). The Ray cluster and the RPC tracker/server are local processes on loopback: on this 2-core machine the
"nodes" share the same cores, so the figures show the engines' overhead, not a cluster's scale (see
docs/scaling.md for the arithmetic beyond one machine).

    python benchmarks/cluster_throughput.py [--candidates 24] [--out benchmarks/results/cluster_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import tempfile
import time


def _candidates(n: int):
    from woodpecker import models
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.measure.reference import reference_io
    from woodpecker.passes.pipeline import optimize
    from woodpecker.space.space import space_for_task

    lowered = lower_graph(optimize(import_onnx(models.build("resnet18"))))
    key = next(k for k, t in lowered.tasks.items() if t.family == "conv2d_nchwc" and "1x1" not in t.name)
    task = lowered.tasks[key]
    node, call = lowered.example(key)
    space = space_for_task(task)
    rng = random.Random(0)
    points = [dict(space.default)]
    while len(points) < n:
        p = space.random_point(rng)
        if p is not None and dict(p) not in points:
            points.append(dict(p))
    return task, reference_io(task, node, lowered.graph, call.args), points


def _run(label: str, make, task, io, points) -> dict:
    from woodpecker import config

    with tempfile.TemporaryDirectory(prefix="wp-tp-") as cache, config.override(cache_dir=pathlib.Path(cache)):
        os.environ["WOODPECKER_CACHE_DIR"] = cache  # worker processes read it from the environment
        t0 = time.perf_counter()
        m = make()
        startup = time.perf_counter() - t0
        try:
            m.set_reference(task, *io)
            t1 = time.perf_counter()
            results = m.measure(task, points)
            secs = time.perf_counter() - t1
        finally:
            m.close()
    ok = sum(r.ok for r in results)
    row = {"measurer": label, "candidates": len(points), "ok": ok, "seconds": round(secs, 2),
           "candidates_per_s": round(len(points) / secs, 3), "startup_s": round(startup, 1)}
    print(f"{label:<16} {len(points)} candidates ({ok} ok) in {secs:6.1f} s: {row['candidates_per_s']:.2f}/s "
          f"(start-up {startup:.1f} s)", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--out", default="benchmarks/results/cluster_throughput.json")
    args = ap.parse_args()

    from woodpecker.hw.host import target_dict
    from woodpecker.measure.measurer import MeasureOptions, Measurer
    from woodpecker.measure.ray_measurer import RayMeasurer
    from woodpecker.measure.rpc_measurer import RpcMeasurer
    from woodpecker.testing.cluster import LocalRayCluster, LocalRpcTracker

    options = MeasureOptions(repeat=3, min_repeat_ms=5, cold_cache=False)  # as in the recorded results
    task, io, points = _candidates(args.candidates)
    rows = [_run("local", lambda: Measurer(target_dict(), options=options), task, io, points)]
    for nodes in (1, 2):
        with LocalRayCluster(nodes=nodes, cpus_per_node=1) as cluster:
            rows.append(_run(f"ray x{nodes}", lambda: RayMeasurer(cluster.address, target_dict(), options=options),
                             task, io, points))
    with LocalRpcTracker() as tracker:
        server = tracker.start_server("bench")
        host, port = tracker.address.split(":")
        rows.append(_run("rpc", lambda: RpcMeasurer(host, int(port), "bench", target_dict(), options=options),
                         task, io, points))
        tracker.kill_server(server)
    base = rows[0]["candidates_per_s"]
    for r in rows:
        r["ratio_vs_local"] = round(r["candidates_per_s"] / base, 3)
        print(f"{r['measurer']:<16} {r['ratio_vs_local']:.2f}x local")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"task": task.name, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
