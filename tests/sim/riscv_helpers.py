"""Small TE kernels for the RISC-V simulation tests, with numpy references."""

from __future__ import annotations

import numpy as np


def matmul_module(m: int, n: int, k: int, *, order: str = "ijk", vector: int = 0, parallel: bool = False):
    """C[i, j] = sum(A[i, r] * B[r, j]) as a one-function IRModule named "mm".

    order "ikj" moves the reduction outside the columns (unit-stride inner loop); vector > 1 splits the
    column loop by that factor and vectorizes it; parallel makes the row loop a parallel loop.
    """
    import tvm
    from tvm import s_tir, te

    a = te.placeholder((m, k), name="A")
    b = te.placeholder((k, n), name="B")
    r = te.reduce_axis((0, k), name="r")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    mod = tvm.IRModule({"mm": te.create_prim_func([a, b, c]).with_attr("global_symbol", "mm")})
    sch = s_tir.Schedule(mod)
    sch.work_on("mm")
    i, j, rr = sch.get_loops(sch.get_sblock("C"))
    if order == "ikj":
        sch.reorder(i, rr, j)
    if vector > 1:
        _, ji = sch.split(j, factors=[None, vector])
        sch.vectorize(ji)
    if parallel:
        sch.parallel(i)
    return sch.mod


def conv_module(c: int, hw: int, k: int, *, vector: int = 0):
    """3x3 convolution, padding 1, NCHW, named "conv".

    Y[0, f, y, x] = sum(X[0, ch, y + r - 1, x + s - 1] * W[f, ch, r, s] for ch, r, s)
    """
    import tvm
    from tvm import s_tir, te

    x = te.placeholder((1, c, hw, hw), name="X")
    w = te.placeholder((k, c, 3, 3), name="W")
    pad = te.compute((1, c, hw + 2, hw + 2), lambda n, ch, y, xx: te.if_then_else(
        te.all(y >= 1, y <= hw, xx >= 1, xx <= hw), x[n, ch, y - 1, xx - 1], te.const(0.0, "float32")), name="P")
    ch = te.reduce_axis((0, c), name="ch")
    rr = te.reduce_axis((0, 3), name="r")
    ss = te.reduce_axis((0, 3), name="s")
    out = te.compute((1, k, hw, hw), lambda n, f, y, xx: te.sum(pad[n, ch, y + rr, xx + ss] * w[f, ch, rr, ss],
                                                                 axis=[ch, rr, ss]), name="Y")
    mod = tvm.IRModule({"conv": te.create_prim_func([x, w, out]).with_attr("global_symbol", "conv")})
    if vector > 1:
        sch = s_tir.Schedule(mod)
        sch.work_on("conv")
        n, f, y, xx, *_ = sch.get_loops(sch.get_sblock("Y"))
        _, xi = sch.split(xx, factors=[None, vector])
        sch.reorder(*sch.get_loops(sch.get_sblock("Y"))[5:], xi)
        sch.vectorize(xi)
        mod = sch.mod
    return mod


def conv_reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    _, c, hw, _ = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((1, w.shape[0], hw, hw), np.float64)
    for r in range(3):
        for s in range(3):
            out += np.einsum("chw,fc->fhw", xp[0, :, r:r + hw, s:s + hw], w[:, :, r, s])[None]
    return out.astype(np.float32)
