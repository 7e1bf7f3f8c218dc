"""Operator-library template + shapes -> Task, without a model: the kernels GPU tests and benchmarks schedule.
"""

from __future__ import annotations

from collections.abc import Mapping

from woodpecker.dsl import printer
from woodpecker.dsl.library import default_library
from woodpecker.dsl.transform import flops, instantiate
from woodpecker.lowering.model import Task, workload_key


def make_task(template: str, bindings: Mapping[str, int | float], name: str | None = None) -> Task:
    """The Task of one library template instantiated with `bindings` (family from the template's @family)."""
    lib = default_library()
    kernel = instantiate(lib.template(template), bindings, name=name or template)
    shapes = tuple(tuple(int(d.value) for d in p.shape) for p in kernel.params)  # type: ignore[union-attr]
    out_shape = tuple(int(a.extent.value) for a in kernel.statement(kernel.output).axes)  # type: ignore[union-attr]
    family = str(kernel.attribute("family", "injective"))
    return Task(
        workload_key(kernel, lib),
        kernel.name,
        family,
        kernel,
        printer.kernel(kernel) + "\n",
        flops(kernel),
        shapes + (out_shape,),
    )


def conv2d_task(
    n: int,
    c: int,
    hw: int,
    k: int,
    rs: int,
    stride: int = 1,
    pad: int = 0,
    groups: int = 1,
    name: str | None = None,
) -> Task:
    """NCHW convolution with a square input and kernel (symmetric padding, no dilation)."""
    return make_task(
        "conv2d",
        dict(
            N=n,
            C=c,
            H=hw,
            W=hw,
            K=k,
            R=rs,
            S=rs,
            G=groups,
            SH=stride,
            SW=stride,
            PT=pad,
            PL=pad,
            PB=pad,
            PR=pad,
            DH=1,
            DW=1,
        ),
        name,
    )


def dense_task(m: int, k: int, n: int, name: str | None = None) -> Task:
    return make_task("dense", dict(M=m, K=k, N=n), name)


def _window(stride: int = 1, pad: int = 0) -> dict[str, int]:
    return dict(SH=stride, SW=stride, PT=pad, PL=pad, PB=pad, PR=pad, DH=1, DW=1)


def gpu_family_tasks() -> dict[str, Task]:
    """Small kernels covering every kernel family a GPU graph has (NCHW layout), with the shapes that exercise
    the templates' corners: strided and depthwise convolutions, a matrix-vector dense layer, broadcast
    batches, padded pooling, a global pool with nothing to reduce, softmax over a middle axis."""
    return {
        "conv2d": conv2d_task(1, 16, 14, 32, 3, 1, 1, name="g_conv2d"),
        "conv2d_strided": conv2d_task(1, 3, 32, 16, 7, 2, 3, name="g_conv2d_strided"),
        "conv2d_depthwise": conv2d_task(1, 32, 14, 32, 3, 1, 1, groups=32, name="g_conv2d_depthwise"),
        "dense": dense_task(64, 128, 96, name="g_dense"),
        "dense_gemv": dense_task(1, 512, 100, name="g_dense_gemv"),
        "dense_packed": make_task("dense_packed", dict(M=4, K=64, NB=8, B=8), name="g_dense_packed"),
        "batch_matmul": make_task(
            "batch_matmul", dict(BT=4, BA=4, BB=1, M=32, K=64, N=32), name="g_batch_matmul"
        ),
        "pool2d": make_task(
            "max_pool2d", dict(N=1, C=16, H=15, W=15, B=1, R=3, S=3, **_window(2, 1)), name="g_pool2d"
        ),
        "global_pool": make_task("global_avg_pool", dict(N=1, C=64, H=7, W=7, B=1), name="g_global_pool"),
        "global_pool_1x1": make_task(
            "global_avg_pool", dict(N=1, C=64, H=1, W=1, B=1), name="g_global_pool_1x1"
        ),
        "softmax": make_task("softmax", dict(O=8, D=100, I=1), name="g_softmax"),
        "softmax_mid": make_task("softmax", dict(O=2, D=10, I=12), name="g_softmax_mid"),
        "layer_norm": make_task("layer_norm", dict(O=16, D=256, EPS=1e-5), name="g_layer_norm"),
        "reduce_sum": make_task("reduce_sum", dict(O=4, R=100, I=3), name="g_reduce_sum"),
        "injective": _injective_task(),
    }


def _injective_task() -> Task:
    """An elementwise kernel (a fused add + relu), as graph lowering writes them (no @family: injective)."""
    from woodpecker.dsl.parser import parse

    source = """
kernel g_injective(A: f32[4, 16, 8, 8], B: f32[16]) -> Y {
  Y[n < 4, c < 16, h < 8, w < 8] = max(A[n, c, h, w] + B[c], 0.0)
}
"""
    lib = default_library()
    kernel = parse(source, "<test>").kernels[0]
    shapes = tuple(tuple(int(d.value) for d in p.shape) for p in kernel.params)  # type: ignore[union-attr]
    out_shape = tuple(int(a.extent.value) for a in kernel.statement(kernel.output).axes)  # type: ignore[union-attr]
    return Task(
        workload_key(kernel, lib),
        kernel.name,
        "injective",
        kernel,
        printer.kernel(kernel) + "\n",
        flops(kernel),
        shapes + (out_shape,),
    )
