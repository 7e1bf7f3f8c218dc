"""Per-model table of `woodpecker bench` reports: woodpecker (untuned + planner, tuned + planner) against the
baselines measured in the same run, with geometric means.

    for m in resnet18 mobilenet_v2; do
        woodpecker bench zoo:$m --baselines onnxruntime,torch,tvm-metaschedule --trials 128 -o reports/$m
    done
    python benchmarks/zoo_table.py reports/*/report.json

Method: that of `woodpecker bench` (woodpecker.bench.report): one process per contender, interleaved rounds, median
of single-run latencies; every contender's outputs checked against onnxruntime first. A ratio is baseline /
woodpecker (above 1: woodpecker is faster); "plan" is what the planner shipped for that build (woodpecker's own
program, a mixed plan, or onnxruntime for the whole model).
"""

from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import geomean  # noqa: E402

BASELINES = ("onnxruntime", "torch", "tvm-metaschedule")


def table(reports: list[dict]) -> str:
    head = ("| model | " + " | ".join(f"{b} ms" for b in BASELINES) +
            " | woodpecker ms (plan) | tuned ms (plan) | ort/untuned | ort/tuned | torch/tuned | ms/tuned |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    ratios: dict[str, list[float]] = {"ort/untuned": [], "ort/tuned": [], "torch/tuned": [], "ms/tuned": []}
    for r in reports:
        ms = {c["name"]: c["median_ms"] for c in r["contenders"]}
        err = {c["name"]: c["error"] for c in r["contenders"]}
        plans = r.get("plans") or {}

        def cell(name: str) -> str:
            if name not in ms:
                return "-"
            return f"{ms[name]:.2f}" if ms[name] else f"failed: {err[name]}"

        def ratio(num: str, den: str, key: str) -> str:
            if ms.get(num) and ms.get(den):
                ratios[key].append(ms[num] / ms[den])
                return f"{ms[num] / ms[den]:.2f}x"
            return "-"

        untuned_plan = (plans.get("woodpecker") or {}).get("chosen", "?")
        tuned_plan = (plans.get("woodpecker-tuned") or {}).get("chosen", "?")
        lines.append(f"| {r['model']} | " + " | ".join(cell(b) for b in BASELINES) +
                     f" | {cell('woodpecker')} ({untuned_plan}) | {cell('woodpecker-tuned')} ({tuned_plan}) | "
                     f"{ratio('onnxruntime', 'woodpecker', 'ort/untuned')} | "
                     f"{ratio('onnxruntime', 'woodpecker-tuned', 'ort/tuned')} | "
                     f"{ratio('torch', 'woodpecker-tuned', 'torch/tuned')} | "
                     f"{ratio('tvm-metaschedule', 'woodpecker-tuned', 'ms/tuned')} |")
    lines.append("| geometric mean | | | | | | " + " | ".join(
        f"{geomean(v):.2f}x" if v else "-" for v in ratios.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    reports = [json.loads(pathlib.Path(p).read_text()) for p in sys.argv[1:]]
    if not reports:
        sys.exit("usage: python benchmarks/zoo_table.py REPORT.json [...]")
    machine = reports[0]["machine"]
    print(f"machine: {machine}; threads: {reports[0]['threads']}\n")
    print(table(reports))


if __name__ == "__main__":
    main()
