"""The plan in words: what ships against onnxruntime with the spread, and why no mix shipped."""

from __future__ import annotations

from woodpecker.planner.summary import plan_lines


def _plan(**extra):
    return {"model": {"chosen": "woodpecker", "process_ms": {"woodpecker": [4.0, 4.1, 4.2], "onnxruntime": [4.4, 4.5, 4.6]},
                      "reason": "woodpecker is the fastest"},
            "calls": [{"chosen": "woodpecker"}] * 3, "chosen_alone": ["onnxruntime", "woodpecker", "woodpecker"],
            "switch_us": {"onnxruntime": 12.0}, **extra}


def test_summary_names_what_ships_and_its_ratio_against_onnxruntime():
    first, per_call = plan_lines(_plan())
    assert first.startswith("shipping woodpecker's kernels: 4.10 ms") and "onnxruntime 4.50 ms" in first
    assert "no vendor call pays for its switches; a switch costs onnxruntime 12 us" in per_call


def test_summary_says_what_the_best_mix_run_cost_in_model_order():
    tried = [{"vendor_calls": 0, "sessions": 0, "in_order_ms": 3.5},
             {"vendor_calls": 83, "sessions": 6, "in_order_ms": 6.8},
             {"vendor_calls": 7, "sessions": 5, "in_order_ms": 4.5}]
    per_call = plan_lines(_plan(mixes_tried=tried))[1]
    assert per_call.endswith("the best mix run, 7 vendor calls in 5 sessions, took 4.50 ms in model order "
                             "against 3.50 ms)")
