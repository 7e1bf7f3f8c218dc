"""Pass rate of woodpecker on ONNX's conformance tests (all of them, not the CI subset).

    python scripts/conformance_report.py                 # summary
    python scripts/conformance_report.py --failures      # and every failing test with its error
    python scripts/conformance_report.py --only conv     # tests whose name matches a regular expression
    python scripts/conformance_report.py --json out.json # per-test results

Node tests: those of supported op types (every op of the model is one woodpecker imports). Printed: passed /
attempted (attempted = not excluded in tests/conformance/excluded.txt) and passed / all node tests of supported op
types. The model-data tests (pytorch-converted, pytorch-operator, simple) are counted the same way.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import pathlib
import re
import sys
import time
import unittest
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "conformance"))
# As in the test suite (tests/conftest.py): woodpecker's own kernels, without the planner's vendor substitutes.
os.environ.setdefault("WOODPECKER_VENDOR", "0")


def _run_unittest(fn) -> tuple[str, str]:
    case = type("Case", (unittest.TestCase,), {"test": fn})("test")
    result = unittest.TestResult()
    case.run(result)
    problems = result.errors or result.failures
    if problems:
        lines = [ln for ln in problems[0][1].strip().splitlines() if ln.strip()]
        # the exception line, or for assert_allclose the "Mismatched elements" line
        detail = next((ln.strip() for ln in lines if "Mismatched elements" in ln), lines[-1].strip())
        return ("fail" if result.failures else "error"), detail[:300]
    if result.skipped:
        return "skip", result.skipped[0][1]
    return "pass", ""


def node_results(only: re.Pattern | None, run_excluded: bool = False) -> dict[str, tuple[str, str]]:
    import onnx.backend.test

    import conformance_suite as suite
    import woodpecker.onnx_backend

    exclusions = suite.read_exclusions()["node"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = onnx.backend.test.BackendTest(woodpecker.onnx_backend, __name__)
    items = runner._test_items["NodeModel"]  # the unfiltered test functions, by name
    out = {}
    for name in suite.supported_node_tests():
        if only and not only.search(name):
            continue
        why = suite.excluded_by(name, exclusions)
        if why and not run_excluded:
            out[name] = ("excluded", why.reason)
        else:
            out[name] = _run_unittest(items[name].func)
            if why:
                out[name] = ("excluded", why.reason + (" -- BUT IT PASSES" if out[name][0] == "pass" else ""))
        print(f"{out[name][0]:8} {name} {out[name][1][:160]}", file=sys.stderr, flush=True)
    return out


def model_data_results(only: re.Pattern | None, run_excluded: bool = False) -> dict[str, tuple[str, str]]:
    import conformance_suite as suite
    import test_onnx_model_data

    exclusions = suite.read_exclusions()["model-data"]
    out = {}
    for case in suite.model_data_cases():
        if only and not only.search(case):
            continue
        why = suite.excluded_by(case, exclusions)
        if why and not run_excluded:
            out[case] = ("excluded", why.reason)
        else:
            out[case] = _run_unittest(lambda self, case=case: test_onnx_model_data._check(case))
            if why:
                out[case] = ("excluded", why.reason + (" -- BUT IT PASSES" if out[case][0] == "pass" else ""))
        print(f"{out[case][0]:8} {case} {out[case][1][:160]}", file=sys.stderr, flush=True)
    return out


def summarize(title: str, results: dict[str, tuple[str, str]], failures: bool, of_what: str) -> None:
    counts = collections.Counter(status for status, _ in results.values())
    total = len(results)
    attempted = total - counts["excluded"]
    passed = counts["pass"]
    print(f"{title}: {passed} passed / {attempted} attempted ({100 * passed / max(attempted, 1):.1f} %); "
          f"{passed} / {total} {of_what} ({100 * passed / max(total, 1):.1f} %); "
          f"{counts['excluded']} excluded, {counts['fail']} wrong results, {counts['error']} errors")
    for name, (status, detail) in sorted(results.items()):
        if (failures and status in ("fail", "error")) or detail.endswith("BUT IT PASSES"):
            print(f"  {status:8} {name}: {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", action="store_true", help="list every failing test with its error")
    parser.add_argument("--only", help="regular expression: run only the tests whose name matches")
    parser.add_argument("--no-model-data", action="store_true", help="node tests only")
    parser.add_argument("--json", type=pathlib.Path, help="write per-test results here")
    parser.add_argument("--run-excluded", action="store_true", help="run the excluded tests too; list those that pass")
    args = parser.parse_args()
    only = re.compile(args.only) if args.only else None
    logging.disable(logging.WARNING)  # symbolic-dimension warnings of the frontend
    t0 = time.perf_counter()
    nodes = node_results(only, args.run_excluded)
    data = {} if args.no_model_data else model_data_results(only, args.run_excluded)
    print(f"ONNX conformance of woodpecker ({time.perf_counter() - t0:.0f} s)")
    summarize("node tests", nodes, args.failures, "node tests of supported op types")
    if data:
        summarize("model-data tests", data, args.failures, "model-data tests")
    if args.json:
        args.json.write_text(json.dumps({"node": nodes, "model-data": data}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
