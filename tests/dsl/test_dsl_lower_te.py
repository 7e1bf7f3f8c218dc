"""DSL -> TVM TE -> LLVM: every library template, instantiated with small shapes, computes what the numpy
reference of the matching graph op computes."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.dsl import ast
from woodpecker.dsl.library import default_library
from woodpecker.dsl.lower_te import to_prim_func
from woodpecker.dsl.parser import parse_kernel
from woodpecker.dsl.transform import instantiate
from woodpecker.errors import DSLError
from woodpecker.ir import ops

tvm = pytest.importorskip("tvm")

LIB = default_library()
RNG = np.random.default_rng(1234)


def _randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def build_and_run(kernel: ast.Kernel, *inputs: np.ndarray, fns=None) -> np.ndarray:
    fns = LIB.fns if fns is None else fns
    lib = tvm.compile(tvm.IRModule({"main": to_prim_func(kernel, fns)}), target="llvm")
    out_stmt = kernel.statement(kernel.output)
    shape = [int(a.extent.value) for a in out_stmt.axes]
    dev = tvm.cpu(0)
    args = [tvm.runtime.tensor(np.ascontiguousarray(x), dev) for x in inputs]
    from woodpecker.dsl.lower_te import to_te

    dtype = str(to_te(kernel, fns)[1].dtype)
    out = tvm.runtime.tensor(np.zeros(shape, dtype=dtype), dev)
    lib["main"](*args, out)
    return out.numpy()


def _window(strides, pads, dilations):
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = strides, pads, dilations
    return dict(SH=sh, SW=sw, PT=pt, PL=pl, PB=pb, PR=pr, DH=dh, DW=dw)


def _check(template: str, bindings: dict, inputs: list[np.ndarray], expected: np.ndarray, rtol=1e-5, atol=1e-5):
    kernel = instantiate(LIB.template(template), bindings)
    got = build_and_run(kernel, *inputs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


CONV_CASES = [
    # (C, K, H, W, R, S, groups, strides, pads (t, l, b, r), dilations)
    (4, 6, 7, 7, 3, 3, 1, (1, 1), (1, 1, 1, 1), (1, 1)),
    (4, 6, 7, 8, 3, 3, 2, (2, 1), (1, 0, 2, 1), (1, 2)),
    (3, 5, 6, 6, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (4, 4, 9, 9, 5, 3, 2, (2, 2), (2, 1, 2, 1), (1, 1)),
]


@pytest.mark.parametrize("c, k, h, w, r, s, g, strides, pads, dil", CONV_CASES)
def test_conv2d(c, k, h, w, r, s, g, strides, pads, dil):
    x, wt = _randn(2, c, h, w), _randn(k, c // g, r, s)
    attrs = dict(strides=strides, pads=pads, dilations=dil, groups=g)
    expected = ops.evaluate("conv2d", [x, wt], attrs)[0]
    b = dict(N=2, C=c, H=h, W=w, K=k, R=r, S=s, G=g, **_window(strides, pads, dil))
    _check("conv2d", b, [x, wt], expected)


@pytest.mark.parametrize("cb, ib, kb, ob, r, strides, pads, dil", [
    (2, 4, 3, 8, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 3, 2, 4, 3, (2, 2), (0, 1, 1, 0), (1, 1)),
    (2, 4, 1, 4, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (1, 4, 1, 4, 3, (1, 1), (2, 2, 2, 2), (2, 2)),
])
def test_conv2d_nchwc(cb, ib, kb, ob, r, strides, pads, dil):
    x, wt = _randn(1, cb, 7, 6, ib), _randn(kb, cb, r, r, ib, ob)
    attrs = dict(strides=strides, pads=pads, dilations=dil)
    expected = ops.evaluate("conv2d_nchwc", [x, wt], attrs)[0]
    b = dict(N=1, CB=cb, H=7, W=6, IB=ib, KB=kb, OB=ob, R=r, S=r, **_window(strides, pads, dil))
    _check("conv2d_nchwc", b, [x, wt], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cb, kb, g, strides, pads", [
    (4, 4, 4, (1, 1), (1, 1, 1, 1)),  # one input and one output block a group
    (4, 2, 2, (2, 2), (0, 1, 1, 0)),  # two input blocks, one output block a group, strided
    (2, 6, 2, (1, 1), (1, 1, 1, 1)),  # one input block, three output blocks a group
])
def test_grouped_conv2d_nchwc(cb, kb, g, strides, pads):
    x, wt = _randn(1, cb, 7, 6, 4), _randn(kb, cb // g, 3, 3, 4, 8)
    attrs = dict(strides=strides, pads=pads, dilations=(1, 1), groups=g)
    expected = ops.evaluate("conv2d_nchwc", [x, wt], attrs)[0]
    b = dict(N=1, CB=cb, H=7, W=6, IB=4, KB=kb, OB=8, G=g, R=3, S=3, **_window(strides, pads, (1, 1)))
    _check("grouped_conv2d_nchwc", b, [x, wt], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strides, pads, dil", [((1, 1), (1, 1, 1, 1), (1, 1)), ((2, 2), (1, 0, 1, 0), (1, 1)),
                                                ((1, 2), (2, 2, 2, 2), (2, 1))])
def test_depthwise_conv2d_nchwc(strides, pads, dil):
    x, wt = _randn(1, 2, 8, 7, 4), _randn(2, 3, 3, 4)
    expected = ops.evaluate("depthwise_conv2d_nchwc", [x, wt], dict(strides=strides, pads=pads, dilations=dil))[0]
    b = dict(N=1, CB=2, H=8, W=7, B=4, R=3, S=3, **_window(strides, pads, dil))
    _check("depthwise_conv2d_nchwc", b, [x, wt], expected)


def test_dense():
    x, w = _randn(3, 20), _randn(7, 20)
    _check("dense", dict(M=3, K=20, N=7), [x, w], ops.evaluate("dense", [x, w], {})[0], rtol=1e-4)


def test_dense_packed():
    x, w = _randn(2, 12), _randn(16, 12)
    packed = ops.pack_dense_weight(w, 8)
    expected = ops.evaluate("dense_packed", [x, packed], {})[0]
    np.testing.assert_allclose(expected, x @ w.T, rtol=1e-5, atol=1e-5)  # the reference agrees with plain dense
    # the kernel's output [M, NB, B] is the row-major [M, N] matrix
    _check("dense_packed", dict(M=2, K=12, NB=2, B=8), [x, packed], expected.reshape(2, 2, 8), rtol=1e-4)


@pytest.mark.parametrize("ba, bb", [(3, 3), (1, 3), (3, 1)])
def test_batch_matmul(ba, bb):
    a, b = _randn(ba, 4, 5), _randn(bb, 5, 6)
    expected = ops.evaluate("batch_matmul", [a, b], {})[0]
    _check("batch_matmul", dict(BT=max(ba, bb), BA=ba, BB=bb, M=4, K=5, N=6), [a, b], expected, rtol=1e-4)


@pytest.mark.parametrize("ba, bb", [(2, 2), (1, 2), (2, 1)])
def test_batch_matmul_nt(ba, bb):
    a, b = _randn(ba, 4, 5), _randn(bb, 6, 5)
    expected = ops.evaluate("batch_matmul", [a, b], {"trans_b": 1})[0]
    _check("batch_matmul_nt", dict(BT=max(ba, bb), BA=ba, BB=bb, M=4, K=5, N=6), [a, b], expected, rtol=1e-4)


POOL_CASES = [
    # kernel, strides, pads, dilations, count_pads
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1, 1, 1)),  # count_include_pad
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (0, 0, 0, 0)),  # pads excluded from the divisor
    ((2, 3), (1, 2), (0, 1, 1, 0), (1, 1), (0, 1, 0, 0)),  # asymmetric
    ((3, 3), (2, 2), (0, 0, 1, 1), (1, 1), (0, 0, 0, 0)),  # ceil_mode-style extra end padding
    ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (0, 0, 0, 0)),  # every window full: a constant divisor
    ((2, 2), (1, 1), (1, 1, 1, 1), (2, 2), (1, 1, 1, 1)),  # dilated
]


@pytest.mark.parametrize("block", [1, 4])
@pytest.mark.parametrize("kernel, strides, pads, dil, count", POOL_CASES)
def test_avg_pool2d(block, kernel, strides, pads, dil, count):
    x = _randn(1, 2, 7, 8, block)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, dilations=dil, count_pads=count)
    x_ref = x[..., 0] if block == 1 else x  # the reference takes NCHW or NCHW[b]c
    expected = ops.evaluate("avg_pool2d", [x_ref], attrs)[0]
    if block == 1:
        expected = expected[..., None]
    ct, cl, cb, cr = count
    b = dict(N=1, C=2, H=7, W=8, B=block, R=kernel[0], S=kernel[1], **_window(strides, pads, dil),
             CT=ct, CL=cl, CBT=cb, CR=cr)
    _check("avg_pool2d", b, [x], expected)


@pytest.mark.parametrize("block", [1, 4])
@pytest.mark.parametrize("kernel, strides, pads, dil, count", POOL_CASES)
def test_max_pool2d(block, kernel, strides, pads, dil, count):
    x = _randn(1, 2, 7, 8, block)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, dilations=dil)
    x_ref = x[..., 0] if block == 1 else x
    expected = ops.evaluate("max_pool2d", [x_ref], attrs)[0]
    if block == 1:
        expected = expected[..., None]
    b = dict(N=1, C=2, H=7, W=8, B=block, R=kernel[0], S=kernel[1], **_window(strides, pads, dil))
    _check("max_pool2d", b, [x], expected)


def test_max_pool2d_all_negative_input_ignores_padding():
    x = -np.abs(_randn(1, 1, 4, 4, 1)) - 1.0  # padding must act as -inf, not 0
    attrs = dict(kernel=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1))
    expected = ops.evaluate("max_pool2d", [x[..., 0]], attrs)[0][..., None]
    assert expected.max() < 0
    b = dict(N=1, C=1, H=4, W=4, B=1, R=3, S=3, **_window((1, 1), (1, 1, 1, 1), (1, 1)))
    _check("max_pool2d", b, [x], expected)


@pytest.mark.parametrize("op", ["global_avg_pool", "global_max_pool"])
@pytest.mark.parametrize("block", [1, 8])
def test_global_pools(op, block):
    x = _randn(2, 3, 5, 6, block)
    expected = ops.evaluate(op, [x], {})[0]  # [N, C, 1, 1, B]
    _check(op, dict(N=2, C=3, H=5, W=6, B=block), [x], expected.reshape(2, 3, block))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(2, 7, 3), (4, 10, 1), (1, 1, 5)])
def test_softmax(op, shape):
    x = _randn(*shape) * 4
    expected = ops.evaluate(op, [x], {})[0]
    o, d, i = shape
    _check(op, dict(O=o, D=d, I=i), [x], expected)


@pytest.mark.parametrize("o,d", [(3, 17), (2, 197), (1, 33), (2, 1000)])
def test_softmax_rows(o, d):
    # vectors of 16 and a tail of 1, 5, 1, 8 elements; rows of large values (overflow without the max)
    x = _randn(o, d) * 40
    expected = ops.evaluate("softmax", [x.reshape(o, d, 1)], {})[0].reshape(o, d)
    _check("softmax_rows", dict(O=o, D=d, DA=d - d % 16), [x], expected)


def test_layer_norm():
    x, scale, bias = _randn(5, 24) * 3 + 2, _randn(24), _randn(24)
    expected = ops.evaluate("layer_norm", [x, scale, bias], {"epsilon": 1e-5})[0]
    _check("layer_norm", dict(O=5, D=24, EPS=1e-5), [x, scale, bias], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [3, 4, 5])
def test_lrn(size):
    x = _randn(1, 7, 3, 2)
    attrs = dict(size=size, alpha=1e-2, beta=0.75, bias=2.0)
    expected = ops.evaluate("lrn", [x], attrs)[0]
    b = dict(N=1, C=7, H=3, W=2, SIZE=size, ALPHA=1e-2, BETA=0.75, BIAS=2.0)
    _check("lrn", b, [x], expected)


@pytest.mark.parametrize("kind", ["sum", "mean", "sum_square", "max", "min"])
def test_reduce(kind):
    x = _randn(3, 6, 4)
    expected = ops.evaluate("reduce", [x], {"kind": kind})[0]
    _check(f"reduce_{kind}", dict(O=3, R=6, I=4), [x], expected)


def test_conv2d_winograd_nchwc():
    """Unscheduled (TVM's default loops): the transforms and products as written compute the 3x3 convolution; 9x10
    outputs in 3x3 tiles overhang them; errors relative to the output's largest magnitude (Winograd's rounding)."""
    from woodpecker.ir import winograd
    from woodpecker.measure.correctness import relative_error

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 9, 10, 4)).astype(np.float32)
    wt = rng.standard_normal((3, 2, 3, 3, 4, 8)).astype(np.float32)
    attrs = dict(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1))
    expected = ops.evaluate("conv2d_nchwc", [x, wt], attrs)[0]
    b = dict(N=1, CB=2, H=9, W=10, IB=4, KB=3, OB=8, OH=9, OW=10, TH=3, TW=3, PT=1, PL=1)
    got = build_and_run(instantiate(LIB.template("conv2d_winograd_nchwc"), b), x, winograd.transform_weight(wt))
    assert got.shape == expected.shape and relative_error(got, expected) < 1e-5


def test_every_template_is_covered_here():
    covered = {
        "conv2d", "conv2d_nchwc", "grouped_conv2d_nchwc", "conv2d_winograd_nchwc", "depthwise_conv2d_nchwc", "dense", "dense_packed", "batch_matmul",
        "batch_matmul_nt", "max_pool2d", "avg_pool2d", "global_avg_pool", "global_max_pool", "softmax",
        "softmax_rows", "log_softmax", "layer_norm", "lrn", "reduce_sum", "reduce_mean", "reduce_sum_square", "reduce_max",
        "reduce_min",
    }
    assert set(LIB.templates) == covered


# ----------------------------------------------------------------------------------------------------------------
# hand-written kernels: scalar functions, casts, integer arithmetic, selects


def test_fns_casts_and_integer_index_arithmetic():
    k = parse_kernel(
        "kernel k(X: f32[2, 8], I: i64[3]) -> Y {\n"
        "  Y[i < 3, j < 8] = relu(X[i % 2, (j + 3) % 8] - 0.25) * f32(I[i]) + (1.0 if j // 4 == 1 else -1.0)\n"
        "}\n"
    )
    x = _randn(2, 8)
    idx = np.array([3, -2, 5], np.int64)
    got = build_and_run(k, x, idx)
    rows = x[np.arange(3) % 2][:, (np.arange(8) + 3) % 8]
    expected = np.maximum(rows - 0.25, 0) * idx[:, None].astype(np.float32) + np.where(np.arange(8) // 4 == 1, 1.0, -1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_elementwise_fns_match_the_op_references():
    names = ["gelu", "gelu_tanh", "softplus", "hard_swish", "reciprocal"]
    body = " + ".join(f"{n}(X[i])" for n in names)
    k = parse_kernel(f"kernel k(X: f32[16]) -> Y {{\n  Y[i < 16] = {body}\n}}\n")
    x = np.linspace(-4, 4, 16).astype(np.float32) + 0.01
    got = build_and_run(k, x)
    expected = (
        ops.evaluate("gelu", [x], {})[0] + ops.evaluate("gelu", [x], {"approximate": "tanh"})[0]
        + ops.evaluate("softplus", [x], {})[0] + ops.evaluate("hard_swish", [x], {})[0]
        + ops.evaluate("reciprocal", [x], {})[0]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_select_evaluates_both_operands_and_stays_vectorized():
    """select(c, a, b) lowers to a TIR Select (both reads made: every index in bounds), which TVM's vectorizer keeps
    as a vector select; `a if c else b` over reads becomes a scalar loop (woodpecker.dsl.lower_te)."""
    from woodpecker.dsl.check import check_kernel

    src = "kernel k(X: f32[4, 16], Z: i32[16]) -> Y {{\n  Y[i < 4, j < 16] = {}\n}}\n"
    k = parse_kernel(src.format("select(j % 2 == 0, X[i, j // 2], f32(Z[15 - j]) * 2.0)"))
    x, z = _randn(4, 16), np.arange(16, dtype=np.int32) - 5
    expected = np.where(np.arange(16) % 2 == 0, x[:, np.arange(16) // 2], (z[15 - np.arange(16)] * 2.0)[None, :])
    np.testing.assert_allclose(build_and_run(k, x, z), expected, rtol=1e-6)

    def vector_values(body: str) -> int:
        """16-lane float values in the LLVM IR of the kernel with its lane loop vectorized."""
        func = to_prim_func(parse_kernel(src.format(body)), {})
        sch = tvm.s_tir.Schedule(tvm.IRModule({"main": func}))
        sch.vectorize(sch.get_loops(sch.get_sblock("Y"))[-1])
        return tvm.compile(sch.mod, target="llvm").mod.inspect_source("ll").count("<16 x float>")

    assert vector_values("select(j % 2 == 0, X[i, j // 2], X[i, 15 - j])") > 0
    assert vector_values("X[i, j // 2] if j % 2 == 0 else X[i, 15 - j]") == 0  # scalarized
    with pytest.raises(DSLError, match="select takes 3"):
        check_kernel(parse_kernel(src.format("select(j < 2, X[i, j])")), {})


def test_literals_of_mixed_types_compare_as_floats():
    # not simplified first: the lowering itself must not truncate 2.5 to the integer 2
    k = parse_kernel("kernel k(X: f32[3]) -> Y {\n  Y[i < 3] = X[i] if 2 >= 2.5 or 1 == 1.5 else -X[i]\n}\n")
    x = np.array([1.0, -2.0, 3.0], np.float32)
    np.testing.assert_array_equal(build_and_run(k, x), -x)


def test_template_must_be_instantiated_before_lowering():
    with pytest.raises(DSLError, match="template"):
        to_prim_func(LIB.template("dense"), LIB.fns)


def test_float_division_of_integers_is_rejected():
    k = parse_kernel("kernel k(X: i32[4]) -> Y {\n  Y[i < 4] = X[i] / 2\n}\n")
    with pytest.raises(DSLError, match="'/' divides floats"):
        to_prim_func(k, {})
