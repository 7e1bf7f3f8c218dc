"""The switch-aware per-call choice: a vendor call is taken only where its gain pays for the switches it causes."""

from __future__ import annotations

from woodpecker.planner.percall import cheapest_path
from woodpecker.planner.plan import ChoiceResult, RegionDecision


def call(i, **times_us):
    results = tuple(ChoiceResult(k, v) for k, v in times_us.items())
    return RegionDecision(i, f"n{i}", f"k{i}", "woodpecker", results)


def test_a_gain_smaller_than_the_switches_is_not_taken():
    calls = [call(0, woodpecker=100, onnxruntime=80), call(1, woodpecker=100, onnxruntime=120)]
    # 20 us faster, but entering and leaving onnxruntime costs 2 x 15 us
    assert cheapest_path(calls, {"onnxruntime": 15.0}) == ["woodpecker", "woodpecker"]
    assert cheapest_path(calls, {"onnxruntime": 5.0}) == ["onnxruntime", "woodpecker"]


def test_a_run_of_vendor_calls_pays_one_entry_and_one_exit():
    calls = [call(i, woodpecker=100, torch=85) for i in range(4)]
    # each call alone gains 15 us, less than a 2 x 20 us round trip; four in a row pay it once
    assert cheapest_path(calls, {"torch": 20.0}) == ["torch"] * 4
    assert cheapest_path(calls[:1], {"torch": 20.0}) == ["woodpecker"]


def test_failed_choices_are_never_taken_and_ties_stay_with_woodpecker():
    calls = [call(0, woodpecker=100, numpy=99), RegionDecision(1, "n1", "k1", "woodpecker",
                                                              (ChoiceResult("woodpecker", 50.0),
                                                               ChoiceResult("torch", None, "wrong result")))]
    assert cheapest_path(calls, {"numpy": 0.0, "torch": 0.0}) == ["woodpecker", "woodpecker"]


def test_between_two_vendors_the_switch_is_charged_too():
    calls = [call(0, woodpecker=200, torch=100, onnxruntime=150), call(1, woodpecker=200, torch=180, onnxruntime=100)]
    # torch then onnxruntime saves most if a torch <-> onnxruntime switch is cheap
    assert cheapest_path(calls, {"torch": 1.0, "onnxruntime": 1.0}) == ["torch", "onnxruntime"]
    # with dear switches one library for both calls is better
    assert cheapest_path(calls, {"torch": 60.0, "onnxruntime": 10.0}) == ["onnxruntime", "onnxruntime"]


def test_in_context_figures_replace_block_times_and_decide_without_a_second_switch_charge():
    from woodpecker.planner.percall import _with_context

    calls = [call(0, woodpecker=100, onnxruntime=60), call(1, woodpecker=100, onnxruntime=90)]
    assert cheapest_path(calls, {}) == ["onnxruntime", "onnxruntime"]
    # in model order the first vendor call cost 160 us (its threads woke up, the next kernel started cold)
    measured = _with_context(calls, {(0, "onnxruntime"): 160.0})
    assert [r.median_us for r in measured[0].results] == [100, 160.0]
    assert measured[1].results == calls[1].results
    assert cheapest_path(measured, {}) == ["woodpecker", "onnxruntime"]


def test_a_run_that_one_session_can_hold_pays_the_session_once():
    # alone each onnxruntime call costs 50 us more than woodpecker's kernel (its session's per-run overhead);
    # merged into one session, each call after the first costs 80 us less than alone
    calls = [call(i, woodpecker=100, onnxruntime=150) for i in range(4)]
    assert cheapest_path(calls, {"onnxruntime": 5.0}) == ["woodpecker"] * 4
    assert cheapest_path(calls, {"onnxruntime": 5.0}, {"onnxruntime": 80.0}) == ["onnxruntime"] * 4
    # figures already measured inside the merged run get no second discount
    measured = {(i, "onnxruntime") for i in range(4)}
    assert cheapest_path(calls, {"onnxruntime": 5.0}, {"onnxruntime": 80.0}, measured) == ["woodpecker"] * 4
    # nor where the program cuts the run (a value read outside it): every call would pay its own session
    cut = [False, False, False, False]
    assert cheapest_path(calls, {"onnxruntime": 5.0}, {"onnxruntime": 80.0}, continues=cut) == ["woodpecker"] * 4


def test_a_merged_runs_time_is_shared_by_its_calls_block_times():
    from woodpecker.planner.percall import _per_call

    calls = [call(0, woodpecker=10, onnxruntime=30), call(1, woodpecker=10, onnxruntime=10),
             call(2, woodpecker=10, onnxruntime=20)]
    path = ["onnxruntime", "onnxruntime", "woodpecker"]
    assert _per_call([80.0, 12.0], [(0, 1), (2,)], path, calls) == [60.0, 20.0, 12.0]
