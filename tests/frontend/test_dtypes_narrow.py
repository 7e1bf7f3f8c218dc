"""Narrow element types end to end: float16/bfloat16 models (inputs, outputs, initializers, operators computing in
them) and Cast/CastLike into float16, bfloat16, float8, float4, int4/int2, compared bit for bit with numpy /
ml_dtypes / ONNX's reference implementation on edge values (ties, subnormals, overflow, inf, NaN, -0)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import woodpecker
from woodpecker.errors import InputError, UnsupportedOpError
from woodpecker.runtime.executor import TensorSpec

NP = {T.FLOAT: np.float32, T.DOUBLE: np.float64, T.FLOAT16: np.float16, T.BFLOAT16: ml_dtypes.bfloat16,
      T.INT8: np.int8, T.UINT8: np.uint8, T.INT32: np.int32, T.INT64: np.int64, T.BOOL: np.bool_,
      T.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn, T.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
      T.FLOAT8E5M2: ml_dtypes.float8_e5m2, T.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
      T.FLOAT8E8M0: ml_dtypes.float8_e8m0fnu, T.FLOAT4E2M1: ml_dtypes.float4_e2m1fn,
      T.INT4: ml_dtypes.int4, T.UINT4: ml_dtypes.uint4, T.INT2: ml_dtypes.int2, T.UINT2: ml_dtypes.uint2}


def _model(nodes, inputs, outputs, initializers=(), opset=21):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(model, feed):
    compiled = woodpecker.compile(model, target="host", vendor=False)
    out = compiled.run(feed)
    return [out[o.name] for o in model.graph.output]


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype, and the same values bit for bit (NaN matching NaN, -0 distinct from +0)."""
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    g, w = got.astype(np.float64), want.astype(np.float64)
    nan = np.isnan(g) & np.isnan(w)
    same = nan | ((g == w) & (np.signbit(g) == np.signbit(w)))
    assert same.all(), f"got {got[~same][:6]} want {want[~same][:6]}"


def _edge_floats() -> np.ndarray:
    """float32 values that probe every narrow float type: each type's ties and neighbours, its overflow threshold,
    its subnormal range, and the specials."""
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(200) * np.exp2(rng.integers(-30, 20, 200)),
              [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, 1e6, -1e6, 0.5, 1.5, 2.5, -3.5]]
    for name in ("float16", "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
                 "float4_e2m1fn"):
        info = ml_dtypes.finfo(np.dtype(name) if name == "float16" else getattr(ml_dtypes, name))
        top, tiny, small = float(info.max), float(info.smallest_subnormal), float(info.smallest_normal)
        ulp_top = top * float(info.eps) / 2
        values.append([top, top + ulp_top / 2, top + ulp_top / 2 * 0.999, top + ulp_top, tiny / 2, tiny * 1.5,
                       tiny * 2.5, small, small - tiny / 2, small * (1 + float(info.eps) / 2), tiny * 0.49])
    x = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values])
    return np.concatenate([x, -x]).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# float16 / bfloat16 models


@pytest.mark.parametrize("elem", [T.FLOAT16, T.BFLOAT16])
def test_operators_compute_in_float32_and_round_after_each(elem):
    """(a + b) * c - a, each result rounded to the model's type before the next operator reads it, as numpy
    computes it in that type; the float32 Cast output shows the rounded intermediate exactly."""
    dt = NP[elem]
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(512).astype(np.float32) * s for s in (300.0, 300.0, 1.7))
    a[:4] = [65504.0, 1e-6, -3e-8, np.nan]  # overflow of the sum, a subnormal sum, NaN
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "c"], ["p"]),
             helper.make_node("Sub", ["p", "a"], ["y"]), helper.make_node("Cast", ["s"], ["s32"], to=T.FLOAT)]
    model = _model(nodes, [(n, elem, [512]) for n in "abc"], [("y", elem, [512]), ("s32", T.FLOAT, [512])])
    feed = {"a": a.astype(dt), "b": b.astype(dt), "c": c.astype(dt)}
    y, s32 = _run(model, feed)

    def f(v):
        return v.astype(np.float32)

    s = (f(feed["a"]) + f(feed["b"])).astype(dt)
    p = (f(s) * f(feed["c"])).astype(dt)
    _assert_same(y, (f(p) - f(feed["a"])).astype(dt))
    _assert_same(s32, f(s))


def test_float16_initializer_constant_and_reduction_match_onnxruntime():
    import onnxruntime as ort

    w = (np.random.default_rng(1).standard_normal((8, 4)) * 0.5).astype(np.float16)
    nodes = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array([0.1], np.float16))),
             helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "k"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]), helper.make_node("ReduceSum", ["r"], ["y"], axes=[1], keepdims=0)]
    model = _model(nodes, [("x", T.FLOAT16, [3, 8])], [("y", T.FLOAT16, [3])], [numpy_helper.from_array(w, "w")],
                   opset=11)
    x = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float16)
    (y,) = _run(model, {"x": x})
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("elem", [T.FLOAT16, T.BFLOAT16])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_rounds_each_step_as_the_reference(elem, opset):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((4, 3, 37)) * 4).astype(NP[elem])
    x[0, 0, :5] = -np.inf  # masked positions
    model = _model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [("x", elem, [4, 3, 37])],
                   [("y", elem, [4, 3, 37])], opset=opset)
    (y,) = _run(model, {"x": x})
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    if elem == T.FLOAT16:
        _assert_same(y, want)
        return
    # bfloat16: ml_dtypes' own bfloat16 arithmetic (a sum rounded per element) is not float32's: two bfloat16 ulps,
    # the tolerance of ONNX's test runner for bfloat16; exactly the steps computed in float32, each rounded
    dt, f = NP[elem], np.float32
    np.testing.assert_allclose(y.astype(f), want.astype(f), rtol=2.0**-6, atol=0)
    shifted = (x.astype(f) - x.astype(f).max(-1, keepdims=True)).astype(dt)
    e = np.exp(shifted.astype(f)).astype(dt)
    _assert_same(y, (e.astype(f) / e.astype(f).sum(-1, keepdims=True).astype(dt).astype(f)).astype(dt))


def test_narrow_input_takes_other_float_types_rounded_and_refuses_integers():
    model = _model([helper.make_node("Identity", ["x"], ["y"])], [("x", T.FLOAT16, [3])], [("y", T.FLOAT16, [3])])
    compiled = woodpecker.compile(model, target="host", vendor=False)
    x = np.array([1 + 2.0**-11, 1 + 3 * 2.0**-11, 70000.0])  # float64: ties to even, overflow
    _assert_same(compiled.run({"x": x})["y"], x.astype(np.float16))
    with pytest.raises(InputError, match="float16"):
        compiled.run({"x": np.arange(3, dtype=np.int32)})


def test_tensor_spec_keeps_its_declared_type_through_json():
    spec = TensorSpec("x", (2,), "float32", "bfloat16")
    assert TensorSpec.from_json(spec.to_json()) == spec
    assert TensorSpec.from_json(TensorSpec("y", (2,), "float32").to_json()).narrow == ""


# ----------------------------------------------------------------------------------------------------------------
# Cast / CastLike against ONNX's reference implementation


def _check_cast(src: int, dst: int, x: np.ndarray, opset: int = 21, **attrs):
    """A one-Cast model against onnx.reference on the same model and input."""
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=dst, **attrs)]
    outputs = [("y", dst, list(x.shape))]
    model = _model(nodes, [("x", src, list(x.shape))], outputs, opset=opset)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    got = _run(model, {"x": x})
    for g, w in zip(got, want):
        _assert_same(g, w)


FLOAT_TARGETS = [T.FLOAT16, T.BFLOAT16, T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ,
                 T.FLOAT4E2M1]


@pytest.mark.parametrize("dst", FLOAT_TARGETS, ids=lambda t: T.DataType.Name(t))
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_float_to_narrow_float(dst, saturate):
    _check_cast(T.FLOAT, dst, _edge_floats(), saturate=saturate)


@pytest.mark.parametrize("dst", [T.FLOAT16, T.BFLOAT16, T.FLOAT8E5M2], ids=lambda t: T.DataType.Name(t))
def test_cast_double_and_int_to_narrow_float_round_once(dst):
    x = _edge_floats().astype(np.float64)
    x = np.concatenate([x, x * (1 + 2.0**-30)])  # just off the float32 values: a float32 step would round twice
    _check_cast(T.DOUBLE, dst, x)
    _check_cast(T.INT64, dst, np.array([2**24 + 2**16 + 1, 65519, 65520, -70000, 2**40 + 1, 0], np.int64))


@pytest.mark.parametrize("src", FLOAT_TARGETS[2:], ids=lambda t: T.DataType.Name(t))
def test_cast_narrow_float_to_float16_and_float(src):
    x = np.clip(_edge_floats(), -400, 400).astype(NP[src])
    _check_cast(src, T.FLOAT16, x)
    _check_cast(src, T.FLOAT, x)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_to_float8e8m0_round_modes(round_mode, saturate):
    x = np.abs(_edge_floats())
    x = np.concatenate([x, [3.0, 1.5, 1.25, 1.75, 2.0**127 * 1.5, 2.0**-127, 2.0**-130, 0.0]]).astype(np.float32)
    _check_cast(T.FLOAT, T.FLOAT8E8M0, x, opset=25, saturate=saturate, round_mode=round_mode)
    _check_cast(T.FLOAT8E8M0, T.FLOAT, x.astype(ml_dtypes.float8_e8m0fnu))


@pytest.mark.parametrize("dst", [T.INT4, T.UINT4, T.INT2, T.UINT2], ids=lambda t: T.DataType.Name(t))
def test_cast_to_small_integers(dst):
    floats = np.concatenate([np.arange(-20, 20, 0.25), [np.nan, np.inf, -np.inf, 1e10, -0.0]]).astype(np.float32)
    _check_cast(T.FLOAT, dst, floats)
    _check_cast(T.FLOAT16, dst, floats.astype(np.float16))
    _check_cast(T.INT32, dst, np.arange(-40, 40, dtype=np.int32))
    narrow = floats[np.isfinite(floats)].astype(NP[dst])
    _check_cast(dst, T.FLOAT, narrow)
    _check_cast(dst, T.INT8 if dst in (T.INT4, T.INT2) else T.UINT8, narrow)


def test_cast_like_takes_the_narrow_type_of_its_second_input():
    x = _edge_floats()
    nodes = [helper.make_node("CastLike", ["x", "like"], ["y"]), helper.make_node("Cast", ["y"], ["z"], to=T.FLOAT),
             helper.make_node("Sub", ["x", "z"], ["err"])]
    like = numpy_helper.from_array(np.zeros(1, np.float16), "like")
    model = _model(nodes, [("x", T.FLOAT, list(x.shape))], [("y", T.FLOAT16, list(x.shape)),
                                                              ("err", T.FLOAT, list(x.shape))], [like])
    got = _run(model, {"x": x})
    for g, w in zip(got, ReferenceEvaluator(model).run(None, {"x": x})):
        _assert_same(g, w)


def test_computing_in_float8_is_refused():
    nodes = [helper.make_node("Add", ["x", "x"], ["y"], name="add8")]
    model = _model(nodes, [("x", T.FLOAT8E4M3FN, [2])], [("y", T.FLOAT8E4M3FN, [2])])
    with pytest.raises(UnsupportedOpError, match="add8.*float8_e4m3fn"):
        woodpecker.compile(model, target="host", vendor=False)


def test_float6_cast_is_refused():
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=T.FLOAT6E2M3, name="c6")], [("x", T.FLOAT, [2])],
                   [("y", T.FLOAT, [2])], opset=25)
    with pytest.raises(UnsupportedOpError, match="c6.*FLOAT6E2M3"):
        woodpecker.compile(model, target="host", vendor=False)


def test_data_movement_keeps_a_narrow_type_without_rounding():
    """Reshape/Transpose/Concat of int4 and float8 values: no rounding node, the values come back unchanged."""
    x = np.arange(-8, 8).reshape(4, 4).astype(ml_dtypes.int4)
    nodes = [helper.make_node("Transpose", ["x"], ["t"]), helper.make_node("Concat", ["t", "x"], ["y"], axis=0)]
    model = _model(nodes, [("x", T.INT4, [4, 4])], [("y", T.INT4, [8, 4])])
    (y,) = _run(model, {"x": x})
    _assert_same(y, np.concatenate([x.T, x], axis=0))


def test_planning_a_model_onnxruntime_cannot_run_keeps_the_generated_kernels():
    """onnxruntime has no bfloat16 Add and takes no bfloat16 arrays: the planner records why and ships woodpecker's
    build instead of failing the compile."""
    model = _model([helper.make_node("Add", ["a", "b"], ["y"])], [("a", T.BFLOAT16, [8]), ("b", T.BFLOAT16, [8])],
                   [("y", T.BFLOAT16, [8])])
    compiled = woodpecker.compile(model, target="host", vendor=True)
    a = np.linspace(-3, 3, 8).astype(ml_dtypes.bfloat16)
    _assert_same(compiled.run({"a": a, "b": a})["y"], (a.astype(np.float32) * 2).astype(ml_dtypes.bfloat16))
    assert compiled.metadata["plan"]["onnxruntime_error"]
