"""Narrow element types: the ONNX types woodpecker holds in a wider "carrier" type and rounds into where needed.

A float16, bfloat16, float8 or float4 tensor is held as float32; an int4/int2 (uint4/uint2) tensor as int8 (uint8).
Every value of the narrow type is exact in its carrier, so converting *from* a narrow type is a plain cast of the
carrier. Converting *into* one is the `to_format` op: it rounds (or wraps) a value into the narrow type's value set
and gives the result in the carrier. Its semantics are those of ONNX's reference Cast (onnx.reference), which uses
ml_dtypes: round to nearest, ties to even; overflow to inf, or to NaN where the type has no inf; with `saturate`
(float8 types only) overflow and inf clamp to the largest finite value; float8e8m0 rounds by `round_mode`.

This module is the numpy side (constant folding, the boundary conversions of the runtime, tests); the kernel side,
the same rounding as integer arithmetic on the float's bits, is woodpecker.dsl.narrow.
"""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    """A binary float format narrower than float32 (precision and range), and how values outside it map."""

    name: str  # the numpy (ml_dtypes) dtype name, also the graph-level type name
    short: str  # its name in DSL builtins: `to_<short>(x)`
    mantissa_bits: int  # explicit fraction bits
    min_normal_exp: int  # exponent of the smallest normal number
    max_finite: float
    has_inf: bool  # overflow goes to +-inf (else to NaN, or to the max where there is no NaN either)
    has_nan: bool
    unsigned_zero: bool  # the FNUZ types: no negative zero (a -0 result is +0)
    saturable: bool  # the float8 types, whose Cast takes `saturate`


@dataclasses.dataclass(frozen=True)
class IntFormat:
    name: str
    short: str
    bits: int
    signed: bool

    @property
    def low(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def high(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def numpy_dtype(name: str) -> np.dtype:
    return np.dtype(name) if name == "float16" else np.dtype(getattr(ml_dtypes, name))


def _float(name: str, short: str, p: int, emin: int, has_inf: bool, has_nan: bool, nuz: bool, sat: bool):
    return FloatFormat(name, short, p, emin, float(ml_dtypes.finfo(numpy_dtype(name)).max), has_inf, has_nan, nuz,
                       sat)


FLOAT_FORMATS: dict[str, FloatFormat] = {f.name: f for f in (
    _float("float16", "f16", 10, -14, True, True, False, False),
    _float("bfloat16", "bf16", 7, -126, True, True, False, False),
    _float("float8_e4m3fn", "e4m3fn", 3, -6, False, True, False, True),
    _float("float8_e4m3fnuz", "e4m3fnuz", 3, -7, False, True, True, True),
    _float("float8_e5m2", "e5m2", 2, -14, True, True, False, True),
    _float("float8_e5m2fnuz", "e5m2fnuz", 2, -15, False, True, True, True),
    _float("float4_e2m1fn", "e2m1", 1, 0, False, False, False, False),
)}
# float8e8m0: a power of two 2^-127..2^127 or NaN, no sign, no zero; rounded by the exponent bits (`round_mode`).
E8M0 = "float8_e8m0fnu"
E8M0_ROUND_MODES = ("up", "down", "nearest")
INT_FORMATS: dict[str, IntFormat] = {f.name: f for f in (
    IntFormat("int4", "i4", 4, True), IntFormat("uint4", "u4", 4, False),
    IntFormat("int2", "i2", 2, True), IntFormat("uint2", "u2", 2, False),
)}
NARROW_TYPES = (*FLOAT_FORMATS, E8M0, *INT_FORMATS)


def carrier(name: str) -> str:
    """The type a narrow type's values are held in."""
    if name in INT_FORMATS:
        return "int8" if INT_FORMATS[name].signed else "uint8"
    return "float32"


def to_format(x: np.ndarray, name: str, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """x rounded into the narrow type `name`, as ONNX's reference Cast computes it, given in the carrier type."""
    return to_narrow(x, name, saturate, round_mode).astype(carrier(name))


def to_narrow(x: np.ndarray, name: str, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """x as an array of the narrow numpy type (the reference semantics; see the module docstring)."""
    x = np.asarray(x)
    if name == E8M0:
        from onnx.numpy_helper import to_float8e8m0

        return to_float8e8m0(x.astype(np.float32), saturate, round_mode)
    dtype = numpy_dtype(name)
    fmt = FLOAT_FORMATS.get(name)
    if fmt is not None and fmt.saturable and saturate:
        x = np.clip(x, -fmt.max_finite, fmt.max_finite)  # inf clamps too; NaN stays NaN
    if x.dtype.kind in "iub" and fmt is not None:
        x = x.astype(np.float64)  # exact below 2**53; ml_dtypes rounds an integer once, as this does
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype)
