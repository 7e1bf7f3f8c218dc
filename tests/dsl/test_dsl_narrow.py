"""The narrow-type rounding builtins (`to_f16(x)`, `to_e4m3fn_sat(x)`, `to_i4(x)`...) compiled by TVM's LLVM backend
give, bit for bit, what ONNX's reference Cast (ml_dtypes) gives: ties, subnormals, overflow, inf, NaN, -0."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.dsl import ast
from woodpecker.dsl.narrow import NARROW_BUILTINS, builtin_name
from woodpecker.ir import formats

tvm = pytest.importorskip("tvm")


def _edge_values(fmt_name: str) -> np.ndarray:
    """Random values over the whole float32 range plus each format's boundaries, their neighbours and ties."""
    with np.errstate(over="ignore", invalid="ignore"):  # the grid runs past the format's max into inf
        return _edge_values_of(fmt_name)


def _edge_values_of(fmt_name: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    wide = rng.standard_normal(3000) * np.exp2(rng.integers(-150, 128, 3000).astype(np.float64))
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 2.0**-149, 2.0**-126, 1.0, -1.0,
               3.4e38, -3.4e38]
    values = [wide, np.array(special)]
    if fmt_name in formats.FLOAT_FORMATS:
        f = formats.FLOAT_FORMATS[fmt_name]
        grid = formats.to_format(np.linspace(-f.max_finite * 1.2, f.max_finite * 1.2, 4001), fmt_name, False)
        tiny = 2.0 ** (f.min_normal_exp - f.mantissa_bits)
        sub = np.arange(-40, 41) * tiny * 0.5  # every subnormal, and the ties between them
        factors = np.array([1.0, 1 + 2.0**-20, 1 - 2.0**-20, 1.5, 0.5])
        for v in (f.max_finite, 2.0 ** f.min_normal_exp, tiny):
            values.append(np.outer([v, -v], factors))
        up = np.nextafter(grid.astype(np.float32), np.float32(np.inf))
        values += [grid, up, sub, np.nextafter(sub.astype(np.float32), np.float32(1))]
        ulp = np.exp2(np.floor(np.log2(np.abs(grid[grid != 0]))) - f.mantissa_bits)
        values.append(grid[grid != 0] + ulp / 2)  # ties (and above the max: the overflow threshold)
    else:
        values.append(np.arange(-20, 21) * 0.5)
    return np.concatenate([np.ravel(v) for v in values]).astype(np.float32)


def _run_builtin(func: str, x: np.ndarray) -> np.ndarray:
    from tvm import te

    from woodpecker.dsl.narrow import lower_narrow

    a = te.placeholder(x.shape, dtype=str(x.dtype), name="a")
    out = te.compute(x.shape, lambda i: lower_narrow(func, a[i], str(x.dtype)), name="out")
    lib = tvm.compile(te.create_prim_func([a, out]), target="llvm")
    dev = tvm.cpu(0)
    result = tvm.runtime.tensor(np.zeros(x.shape, dtype=str(out.dtype)), dev)
    lib["main"](tvm.runtime.tensor(x, dev), result)
    return result.numpy()


def _same_bits(got: np.ndarray, want: np.ndarray, x: np.ndarray, label: str) -> None:
    assert got.dtype == want.dtype, label
    if got.dtype.kind == "f":
        both_nan = np.isnan(got) & np.isnan(want)
        bad = ~both_nan & (got.view(np.uint32) != want.view(np.uint32))
    else:
        bad = got != want
    assert not bad.any(), f"{label}: x={x[bad][:5]} got={got[bad][:5]} want={want[bad][:5]}"


@pytest.mark.parametrize("func", sorted(NARROW_BUILTINS))
def test_builtin_matches_reference_on_float32(func):
    type_name, saturate, round_mode = NARROW_BUILTINS[func]
    x = _edge_values(type_name)
    want = formats.to_format(x, type_name, saturate, round_mode)
    _same_bits(_run_builtin(func, x), want, x, func)


@pytest.mark.parametrize("type_name", ["float16", "bfloat16", "float8_e4m3fn", "float8_e5m2fnuz", "float4_e2m1fn"])
def test_float64_source_rounds_once(type_name):
    """A float64 source is rounded from float64: just above a tie of the narrow type it rounds up, where a float32
    step first would land on the tie and round to even."""
    f = formats.FLOAT_FORMATS[type_name]
    grid = formats.to_format(np.linspace(-f.max_finite, f.max_finite, 2001), type_name, False).astype(np.float64)
    grid = grid[grid != 0]
    ulp = np.exp2(np.floor(np.log2(np.abs(grid))) - f.mantissa_bits)
    x = np.concatenate([grid + ulp / 2 + np.abs(grid) * 2.0**-40, grid + ulp / 2, [np.nan, np.inf, -0.0, 1e-300]])
    func = builtin_name(type_name, saturate=False)
    _same_bits(_run_builtin(func, x), formats.to_format(x, type_name, False), x, func)


@pytest.mark.parametrize("type_name", sorted(formats.INT_FORMATS))
@pytest.mark.parametrize("source", ["int64", "int32", "uint8", "bool"])
def test_int_builtin_wraps_integers(type_name, source):
    x = (np.arange(-300, 300) if source != "bool" else np.arange(2)).astype(source)
    func = builtin_name(type_name)
    _same_bits(_run_builtin(func, x), formats.to_format(x, type_name), x, func)


@pytest.mark.parametrize("type_name", ["float16", "bfloat16", "float8_e5m2"])
def test_integer_source_rounds_once(type_name):
    x = np.array([2**24 + 2**16 + 1, 65519, 65520, -65521, 2**31 - 1, -(2**31)], dtype=np.int64)
    func = builtin_name(type_name, saturate=False)
    _same_bits(_run_builtin(func, x), formats.to_format(x, type_name, False), x, func)


def test_builtins_are_dsl_functions():
    from woodpecker.dsl.check import BUILTINS

    assert all(BUILTINS[name] == 1 for name in NARROW_BUILTINS)
    assert builtin_name("float16") == "to_f16" and builtin_name("float8_e4m3fn", True) == "to_e4m3fn_sat"
    assert ast.Call("to_f16", (ast.Var("x"),)).func in BUILTINS
