"""Winograd F(4x4, 3x3) convolutions: the transforms (woodpecker.ir.winograd), the generated kernel
(kernels/winograd.wpl scheduled by woodpecker.schedule.cpu_winograd) at odd sizes and knob values, and whole models
against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.ir import ops, winograd
from woodpecker.measure.correctness import relative_error
from woodpecker.schedule.structure import analyze
from woodpecker.testing.kernels import make_task

# (N, C, H, W, K, IB, OB, pads): tiles that overhang the output (13 = 3 x 4 + 1), no padding, asymmetric
# padding, a batch of 2, three input blocks, narrow blocks
CASES = ((1, 48, 13, 13, 32, 16, 16, (1, 1, 1, 1)),
         (2, 32, 10, 9, 64, 16, 16, (0, 0, 0, 0)),
         (1, 16, 8, 12, 24, 8, 8, (0, 1, 1, 0)),
         (1, 12, 7, 7, 8, 4, 4, (1, 1, 1, 1)),
         (1, 32, 50, 50, 32, 16, 16, (1, 1, 1, 1)))  # rows of 13 tiles: the fused default's peeled remainder


def _io(n, c, h, w, k, ib, ob, pads, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c // ib, h, w, ib)).astype(np.float32)
    weight = (rng.standard_normal((k // ob, c // ib, 3, 3, ib, ob)) / np.sqrt(9 * c)).astype(np.float32)
    attrs = {"strides": (1, 1), "pads": pads, "dilations": (1, 1)}
    return x, weight, attrs


def test_the_weight_transform_inverts_and_the_numpy_form_is_the_convolution():
    for n, c, h, w, k, ib, ob, pads in CASES:
        x, weight, attrs = _io(n, c, h, w, k, ib, ob, pads)
        u = winograd.transform_weight(weight)
        assert u.shape == (36, k // ob, c // ib, ib, ob) and u.dtype == np.float32
        np.testing.assert_allclose(winograd.plain_weight(u), weight, atol=1e-6)
        direct = ops.evaluate("conv2d_nchwc", [x, weight], attrs)[0]
        assert relative_error(winograd.reference(x, u, pads), direct) < 1e-5
        # the graph op (the interpreter's and the vendors' form) computes the direct convolution of the recovered g
        assert relative_error(ops.evaluate("conv2d_winograd_nchwc", [x, u], attrs)[0], direct) < 1e-5


def _task(n, c, h, w, k, ib, ob, pads):
    pt, pl, pb, pr = pads
    oh, ow = h + pt + pb - 2, w + pl + pr - 2
    return make_task("conv2d_winograd_nchwc", dict(
        N=n, CB=c // ib, H=h, W=w, IB=ib, KB=k // ob, OB=ob, OH=oh, OW=ow, TH=winograd.tiles(oh),
        TW=winograd.tiles(ow), PT=pt, PL=pl))


@pytest.mark.parametrize("case", CASES)
def test_the_generated_kernel_computes_the_convolution_at_odd_sizes_and_knobs(case):
    """Default knobs and variants (a tile of tiles that does not divide them, one output block per tile, half a
    block of lanes, a split input-channel loop, each parallel depth, no unrolling), against the direct convolution
    in float32: Winograd's rounding stays within 1e-4 of the output's largest magnitude."""
    import tvm

    from woodpecker.hw.host import llvm_target
    from woodpecker.schedule.apply import schedule
    from woodpecker.space.space import space_for_task

    task = _task(*case)
    x, weight, attrs = _io(*case)
    u = winograd.transform_weight(weight)
    want = ops.evaluate("conv2d_nchwc", [x, weight], attrs)[0]
    default = dict(space_for_task(task).default)
    st = analyze(task.kernel)
    # split_cb 2 of 3 channel blocks (cases 1 and 4) and tile_kb 2 of 3 output blocks (case 3) leave a remainder:
    # the search space offers every value up to the extent, dividing or not
    # fused per row of tiles (fuse_rows): whole rows, rows in 2 and 4 blocks (a block that overhangs the row:
    # 13 outputs are 4 tiles, 3 in 2 blocks of 2), a register tile that does not divide the block
    variants = [{}, {"tile_p": 5, "tile_kb": 1, "parallel": 1}, {"tile_ko": max(1, case[6] // 2), "split_cb": 2},
                {"parallel": 3, "unroll": 0, "tile_p": 3}, {"tile_kb": min(2, st.extent("kb")), "split_cb": 2},
                {"fuse_rows": 0}, {"fuse_rows": 1, "tile_p": 3, "tile_kb": min(2, st.extent("kb"))},
                {"fuse_rows": 2, "split_cb": 2, "unroll": 0}, {"fuse_rows": 4, "tile_p": 1}]
    dev = tvm.cpu()
    for variant in variants:
        knobs = {**default, **variant}
        ex = tvm.compile(schedule(task, knobs), target=llvm_target())
        out = tvm.runtime.tensor(np.full(want.shape, np.nan, np.float32), dev)
        ex.mod[task.name](tvm.runtime.tensor(x, dev), tvm.runtime.tensor(u, dev), out)
        assert relative_error(out.numpy(), want) < 1e-4, (case, knobs)


def test_the_default_register_tile_follows_the_vector_registers():
    from woodpecker.schedule import cpu_defaults

    st = analyze(_task(1, 256, 14, 14, 256, 16, 16, (1, 1, 1, 1)).kernel)  # three nests (see the test below)
    wide = cpu_defaults.default_knobs("conv2d_winograd", st, 16, 8, 32)
    assert (wide["tile_p"], wide["tile_kb"], wide["tile_ko"]) == (6, 2, 16)  # 12 of 32 registers
    narrow = cpu_defaults.default_knobs("conv2d_winograd", st, 8, 8, 16)
    assert (narrow["tile_p"], narrow["tile_kb"]) == (4, 1)  # 4 tiles x 2 vectors of 8 lanes: 8 of 16
    odd = analyze(_task(1, 32, 8, 8, 48, 16, 16, (1, 1, 1, 1)).kernel)  # 3 output blocks, 4 tiles
    knobs = cpu_defaults.default_knobs("conv2d_winograd", odd, 16, 8, 32)
    assert (knobs["tile_p"], knobs["tile_kb"]) == (4, 1)
    # 16-channel blocks on 4 lanes (32 registers, as NEON): 4 vectors per block, 3 tiles x 2 blocks = 24 of 30
    four = cpu_defaults.default_knobs("conv2d_winograd", st, 4, 8, 32)
    assert (four["tile_p"], four["tile_kb"]) == (3, 2)


@pytest.mark.parametrize("c,k,hw,fused,tile_p", [
    (64, 64, 224, 1, 8),  # U 590 KB, 56 tiles a row: each row reads U at 0.6x its own V and M
    (256, 256, 56, 1, 7),  # 9.1x
    (112, 224, 14, 1, 4),  # 18.7x; 4 tiles a row: the register tile divides it
    (256, 256, 14, 0, 6),  # 32x: U (9.4 MB) read by each of 4 rows
    (512, 512, 28, 0, 6),  # 37.7 MB of U
    (128, 32, 7, 0, 4),  # 12.8x, but 2 rows of tiles: fewer than 2 blocks per thread
    (16, 16, 56, 1, 7),  # one input block: the kernel has no cb axis
    (64, 64, 50, 1, 8)])  # 13 tiles a row, no divisor but 1 and 13: 8 and a peeled remainder of 5
def test_the_default_fuses_the_stages_where_each_row_reads_little_of_u(c, k, hw, fused, tile_p):
    from woodpecker import config
    from woodpecker.schedule import cpu_defaults

    st = analyze(_task(1, c, hw, hw, k, 16, 16, (1, 1, 1, 1)).kernel)
    with config.override(num_threads=2):
        knobs = cpu_defaults.default_knobs("conv2d_winograd", st, 16, 8, 32)
    assert (knobs["fuse_rows"], knobs["tile_p"]) == (fused, tile_p)
    if fused:
        assert knobs["tile_kb"] == 1


@pytest.mark.parametrize("lanes,registers", [(16, 32), (8, 16), (4, 32), (4, 16)])
def test_the_default_knobs_satisfy_the_search_space(lanes, registers):
    """The untuned default is a point of the space the tuner searches: its accumulators fit the register file."""
    from woodpecker.schedule import cpu_defaults
    from woodpecker.space.space import space_for_task

    task = _task(1, 64, 28, 28, 64, 16, 16, (1, 1, 1, 1))
    default = cpu_defaults.default_knobs("conv2d_winograd", analyze(task.kernel), lanes, 8, registers)
    space = space_for_task(task, lanes=lanes, vector_registers=registers)
    assert not space.violations(default), space.violations(default)


def _residual_model(c: int, hw: int):
    """conv 3x3 + bias -> relu -> conv 3x3 + bias -> + input -> relu: two Winograd layers, epilogues fused."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(c + hw)
    inits = {name: (rng.standard_normal(shape) / np.sqrt(9 * c)).astype(np.float32)
             for name, shape in (("w1", (c, c, 3, 3)), ("b1", (c,)), ("w2", (c, c, 3, 3)), ("b2", (c,)))}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1] * 4),
             helper.make_node("Add", ["c2", "x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_a_residual_block_compiled_for_the_host_runs_winograd_and_matches_onnxruntime():
    """Both 3x3 layers run as Winograd with their bias, ReLU and residual add fused into the output transform; 40
    channels are padded to 48 (three 16-lane blocks on AVX-512) and 14x14 outputs overhang their 4x4 tiles."""
    import onnxruntime as ort

    import woodpecker

    model = _residual_model(40, 14)
    compiled = woodpecker.compile(model, vendor=False)
    winograd_kernels = [k for k in compiled.kernels if k.family == "conv2d_winograd"]
    assert sum(k.calls for k in winograd_kernels) == 2
    assert any("relu(" in k.source and "wino_at(" in k.source for k in winograd_kernels)
    x = np.random.default_rng(1).standard_normal((1, 40, 14, 14)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert relative_error(compiled.run({"x": x})["y"], want) < 1e-4
