"""The one correctness check (woodpecker.measure.correctness) on the cases that used to be judged differently:
integers, NaN and infinities, a zero reference, a size mismatch."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.measure.correctness import RTOL, difference, matches, outputs_difference, relative_error


def test_relative_error_is_relative_to_the_reference_magnitude():
    want = np.array([100.0, -50.0, 0.0], dtype=np.float32)
    assert relative_error(want + np.float32(0.05), want) == pytest.approx(0.05 / 100, rel=1e-3)
    assert matches(want + np.float32(0.05), want)
    assert not matches(want + np.float32(0.2), want)


def test_integers_and_booleans_must_be_equal():
    assert relative_error(np.array([1, 2, 3]), np.array([1, 2, 3])) == 0.0
    assert relative_error(np.array([1, 2, 4]), np.array([1, 2, 3])) == float("inf")
    assert relative_error(np.array([True, False]), np.array([True, True])) == float("inf")
    assert difference(np.array([1, 2, 4]), np.array([1, 2, 3])) == "output: 1 of 3 integer elements differ"


def test_nan_and_infinities_must_be_where_the_reference_has_them():
    want = np.array([1.0, np.nan, np.inf, -np.inf])
    assert relative_error(want.copy(), want) == 0.0
    assert relative_error(np.array([1.0, 0.0, np.inf, -np.inf]), want) == float("inf")
    assert relative_error(np.array([1.0, np.nan, -np.inf, -np.inf]), want) == float("inf")
    assert "NaN" in difference(np.array([1.0, 0.0, np.inf, -np.inf]), want)
    assert "infinities" in difference(np.array([1.0, np.nan, np.inf, np.inf]), want)
    # a non-finite output where the reference is finite is wrong, whatever the magnitude
    assert relative_error(np.array([np.inf, 2.0]), np.array([1.0, 2.0])) == float("inf")


def test_a_zero_reference_is_compared_in_absolute_terms():
    want = np.zeros(4, dtype=np.float32)
    assert matches(np.full(4, 1e-10, dtype=np.float32), want)
    assert not matches(np.full(4, 1e-6, dtype=np.float32), want)


def test_sizes_and_types():
    assert relative_error(np.ones(3), np.ones(4)) == float("inf")
    assert relative_error(np.ones((1, 4)), np.ones(4)) == 0.0  # same elements, other view: a kernel's param shape
    assert difference(np.ones(4, np.float64), np.ones(4, np.float32)) is not None  # a model's outputs keep types
    assert difference(np.ones(4, np.float64), np.ones(4, np.float32), same_type=False) is None


def test_outputs_difference_names_the_first_wrong_output():
    ref = {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)}
    assert outputs_difference({"a": ref["a"], "b": ref["b"]}, ref) is None
    assert outputs_difference({"a": ref["a"]}, ref) == "output b is missing"
    bad = {"a": ref["a"], "b": ref["b"] * np.float32(1 + 10 * RTOL)}
    assert outputs_difference(bad, ref).startswith("output b: max relative error")
