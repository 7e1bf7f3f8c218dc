"""The one correctness check of woodpecker: a kernel, a vendor choice, a whole model, a fuzz graph or a simulated
run is correct when every output matches its reference to RTOL.

    floats    max |out - ref| / max |ref| over the reference's finite elements <= RTOL, NaN at the same places,
              the same infinities, no non-finite value where the reference is finite
    integers  and booleans: equal, element for element

Used by the measurers (a candidate's time counts only after this check), the planner, bench, the CLI's simulated
run, the device kit and the fuzzer, so that one output is judged the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

RTOL = 1e-3  # accepted max |out - ref| / max |ref|
_TINY_SCALE = 1e-6  # a reference of zeros is compared in absolute terms against this


def _compare(have: np.ndarray, want: np.ndarray) -> tuple[float, str]:
    """(relative error, why it is infinite or "") of same-sized arrays, `have` viewed in `want`'s shape."""
    have = have.reshape(want.shape)
    if want.dtype == np.bool_ or want.dtype.kind in "iu" or have.dtype == np.bool_:
        if np.array_equal(have, want):
            return 0.0, ""
        return float("inf"), f"{int(np.sum(have != want))} of {want.size} integer elements differ"
    have64, want64 = have.astype(np.float64), want.astype(np.float64)
    if not np.array_equal(np.isnan(have64), np.isnan(want64)):
        return float("inf"), "NaN at other places than the reference"
    infinite = np.isinf(want64)
    if not np.array_equal(have64[infinite], want64[infinite]):
        return float("inf"), "infinities differ"
    finite = np.isfinite(want64)
    if not finite.any():
        return 0.0, ""
    if not np.all(np.isfinite(have64[finite])):
        return float("inf"), "non-finite values where the reference is finite"
    scale = max(float(np.max(np.abs(want64[finite]))), _TINY_SCALE)
    return float(np.max(np.abs(have64[finite] - want64[finite]))) / scale, ""


def relative_error(out: np.ndarray, expected: np.ndarray) -> float:
    """max |out - expected| / max |expected| over the finite elements of `expected` (0.0 when equal); inf when the
    sizes differ, integers or booleans differ, or NaNs and infinities are not where the reference has them."""
    have, want = np.asarray(out), np.asarray(expected)
    if have.size != want.size:
        return float("inf")
    return _compare(have, want)[0]


def matches(out: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> bool:
    return relative_error(out, expected) <= rtol


def difference(out: np.ndarray, expected: np.ndarray, name: str = "output", rtol: float = RTOL,
               same_type: bool = True) -> str | None:
    """None when `out` matches `expected`; otherwise what differs, on one line (`same_type`: the dtype and shape
    must be the reference's too, as for a model's outputs)."""
    have, want = np.asarray(out), np.asarray(expected)
    if same_type and (have.shape != want.shape or have.dtype != want.dtype):
        return f"{name}: {have.dtype}{list(have.shape)} != reference {want.dtype}{list(want.shape)}"
    if have.size != want.size:
        return f"{name}: {have.size} elements != reference {want.size}"
    err, why = _compare(have, want)
    if err <= rtol:
        return None
    return f"{name}: {why}" if why else f"{name}: max relative error {err:.3g} > {rtol:g}"


def outputs_difference(ours: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], rtol: float = RTOL,
                       same_type: bool = True) -> str | None:
    """None when every reference output is present in `ours` and matches; otherwise the first difference."""
    for name, want in reference.items():
        have = ours.get(name)
        if have is None:
            return f"output {name} is missing"
        why = difference(have, want, f"output {name}", rtol, same_type)
        if why:
            return why
    return None
