"""CPU default schedules: the register tile follows the host's vector registers."""

from __future__ import annotations

import math

import numpy as np

from woodpecker.hw.host import detect
from woodpecker.schedule import cpu_defaults
from woodpecker.schedule.structure import analyze


def _accumulators(knobs, lanes: int) -> int:
    rows = math.prod(int(v) for k, v in knobs.items() if k in ("tile_x", "tile_y"))
    return rows * math.ceil(int(knobs["tile_ko"]) / lanes)


def test_register_tile_holds_eight_accumulators_of_the_vector_width(lowered_zoo):
    task = next(t for t in lowered_zoo if t.family == "conv2d_nchwc" and t.param_shapes[-1][3] >= 8)
    st = analyze(task.kernel)
    for lanes in (8, 16):
        knobs = cpu_defaults.default_knobs(task.family, st, lanes, 8)
        assert _accumulators(knobs, lanes) == 8, (lanes, knobs)
    # on an AVX-512 register file a 16-lane block is one register: twice the rows of the AVX2 tile
    assert cpu_defaults.default_knobs(task.family, st, 16, 8)["tile_x"] == 2 * cpu_defaults.default_knobs(task.family, st, 8, 8)["tile_x"]


def test_host_register_tile_matches_the_detected_cpu():
    lanes, accumulators = cpu_defaults.host_register_tile()
    host = detect()
    assert lanes == host.vector_bits // 32
    assert accumulators == min(8, host.vector_registers // 2)


def _dense_b1(k: int, n: int):
    return _dense(1, k, n)


def _dense(m: int, k: int, n: int):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(k + n)
    w, b = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])]
    graph = helper.make_graph(nodes, "fc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, w, b


def _dense_task(model):
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize

    return next(t for t in lower_graph(optimize(import_onnx(model))).tasks.values() if t.family == "dense_packed")


def test_a_batch_one_dense_layer_tiles_several_weight_panels():
    """With one row of X the register tile would hold one accumulator chain; the spare accumulators go to weight
    panels: about 4, a divisor of the panel count where one is near (benchmarks/dense_b1.py: 2.4x on cached
    weights)."""
    for lanes in (8, 16):
        for n, panels in ((1024, 4), (1000, 5)):
            st = analyze(_dense_task(_dense_b1(64, n)[0]).kernel)
            knobs = cpu_defaults.default_knobs("dense_packed", st, lanes, 8)
            assert int(knobs["tile_nb"]) == panels, (lanes, n, knobs)
            assert int(knobs["tile_m"]) * int(knobs["tile_nb"]) * math.ceil(int(knobs["tile_b"]) / lanes) <= 8


def test_batch_one_dense_layers_compute_the_product():
    """Numerics of the panel tile, a panel count with a near divisor (1000 = 125 panels of 8: 5), a prime one with
    the remainder guarded (7 x 8 outputs: 4 + 3) and one smaller than the tile (2 x 8)."""
    import numpy as np

    import woodpecker

    for k, n in ((96, 1000), (33, 56), (40, 16)):
        model, w, b = _dense_b1(k, n)
        x = np.random.default_rng(k).standard_normal((1, k)).astype(np.float32)
        got = woodpecker.compile(model, vendor=False).run({"x": x})["y"]
        np.testing.assert_allclose(got, x @ w + b, rtol=1e-4, atol=1e-4, err_msg=f"{k}x{n}")


def test_dense_layers_with_many_rows_and_a_weight_beyond_l2_run_their_weight_panels_outermost(monkeypatch):
    """ViT's token-wise layers (197 rows, weights of 2.25-9 MiB): panels outermost, the parallel loop over the
    panels alone, 6 rows x 2 panels on a 32-register file; BERT's 256-wide layers (weights in L2), batch-1 layers
    and simulated targets (their own register file) keep the rows-first order."""
    monkeypatch.setattr(cpu_defaults, "host_l2_bytes", lambda: 1 << 20)

    def knobs(m, k, n, *file):
        return cpu_defaults.default_knobs("dense_packed", analyze(_dense_task(_dense(m, k, n)[0]).kernel), *file)

    wide = knobs(197, 768, 768, 16, 8, 32)
    assert (wide["outer_order"], wide["parallel"], wide["tile_m"], wide["tile_nb"]) == ("panels", 1, 6, 2)
    narrow = knobs(197, 768, 768, 8, 8, 16)  # AVX2: the 8-accumulator tile (4 rows x 2 vectors), the same order
    assert (narrow["outer_order"], narrow["tile_m"], narrow["tile_nb"]) == ("panels", 4, 1)
    few = knobs(197, 8192, 64, 16, 8, 32)  # 2 MiB in 4 panels: 2 pairs, fused with the rows
    assert (few["outer_order"], few["parallel"]) == ("panels", 2)
    assert knobs(128, 256, 256, 16, 8, 32).get("outer_order", "default") == "default"  # 256 KiB: in L2
    assert knobs(1, 4096, 1024, 16, 8, 32).get("outer_order", "default") == "default"
    simulated = cpu_defaults.default_knobs("dense_packed", analyze(_dense_task(_dense(197, 768, 768)[0]).kernel), 1, 8)
    assert simulated.get("outer_order", "default") == "default"


def test_panel_first_dense_layers_with_a_hoisted_reduction_block_are_exact():
    """Panels outermost, with and without the reduction's outer loop hoisted above the row tiles (k_outer: the
    partial sums of a chunk complete only after its last K block), on odd sizes: 37 rows in tiles of 6, 5 panels in
    pairs, K = 100 in blocks of 32, with the bias epilogue."""
    import tvm

    from woodpecker.hw.host import llvm_target
    from woodpecker.measure.correctness import relative_error
    from woodpecker.schedule.apply import schedule
    from woodpecker.space.space import space_for_task

    dev = tvm.cpu()
    for m, k, n in ((37, 100, 80), (16, 64, 32)):
        task, (inputs, expected) = _task_io(_dense(m, k, n)[0], "dense_packed")
        default = dict(space_for_task(task).default)
        for over in ({"outer_order": "panels", "parallel": 1, "tile_m": 6, "tile_nb": 2},
                     {"outer_order": "panels", "parallel": 2, "tile_m": 6, "tile_nb": 2},
                     {"outer_order": "panels", "parallel": 1, "tile_m": 4, "tile_nb": 2, "k_outer": 1, "split_k": 32},
                     {"outer_order": "default", "parallel": 1, "tile_m": 8, "tile_nb": 1, "k_outer": 1,
                      "split_k": 16}):
            knobs = {**default, **over}
            mod = schedule(task, knobs)
            ex = tvm.compile(mod, target=llvm_target())
            out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
            ex.mod[task.name](*[tvm.runtime.tensor(a, dev) for a in inputs], out)
            assert relative_error(out.numpy(), expected) < 1e-4, (m, k, n, over)


def test_lane_loop_is_a_divisor_of_an_odd_row_or_one_guarded_vector():
    """The vector lane loop along a row of up to 64 pixels (NCHW convolutions): the whole row when it fills whole
    vectors, else a divisor of at least half a vector (28 -> 14 on AVX-512: a 28-lane vector ran 7x slower), else
    one guarded vector (58 = 2 x 29)."""
    assert [cpu_defaults._lanes(e, 16) for e in (7, 13, 16, 28, 32, 56, 58, 64, 112, 224)] == [7, 13, 16, 14, 32, 14, 16, 64, 16, 16]
    assert [cpu_defaults._lanes(e, 8) for e in (7, 28, 56, 13)] == [7, 7, 56, 8]
    assert [cpu_defaults._lanes(e, 1) for e in (7, 28, 113)] == [7, 28, 1]  # scalar cores: unchanged
    assert cpu_defaults._lanes(197, 16) == 1  # above 64 a divisor, even 1 (a guarded vector was slower on ViT)


def _conv(c: int, k: int, hw: int, r: int, groups: int, stride: int):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(c * k + hw)
    w = rng.standard_normal((k, c // groups, r, r)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    out = (hw + 2 * (r // 2) - r) // stride + 1
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[r, r], strides=[stride] * 2,
                            pads=[r // 2] * 4, group=groups)
    graph = helper.make_graph([node, helper.make_node("Relu", ["y"], ["z"])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, k, out, out])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_nchw_convolutions_with_odd_rows_compute_what_onnxruntime_does():
    """Numerics of the lane rule's cases on NCHW convolutions (odd channel counts and grouped ones stay in NCHW):
    a divisor of the row (28 -> 14, 1x1 and depthwise, the stride-2 depthwise of ShuffleNet), a guarded vector
    (a row of 29 pixels), a 56-pixel row in 32 groups (ResNeXt), the channels not a multiple of the row tile."""
    import numpy as np
    import onnxruntime as ort

    import woodpecker
    from woodpecker.measure.correctness import relative_error

    for c, k, hw, r, groups, stride in ((58, 58, 28, 1, 1, 1), (58, 58, 28, 3, 58, 1), (58, 58, 56, 3, 58, 2),
                                        (6, 10, 29, 3, 1, 1), (64, 64, 56, 3, 32, 1)):
        model = _conv(c, k, hw, r, groups, stride)
        x = np.random.default_rng(hw).standard_normal((1, c, hw, hw)).astype(np.float32)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        want = session.run(None, {"x": x})[0]
        got = woodpecker.compile(model, vendor=False).run({"x": x})["z"]
        assert got.shape == want.shape
        assert relative_error(got, want) <= 1e-4, (c, k, hw, r, groups, stride)


def _matmul_model(a_shape, b_shape, scale: bool):
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("MatMul", ["a", "b"], ["t" if scale else "y"])]
    inits = []
    if scale:  # an epilogue: the padded result is read by it
        nodes.append(helper.make_node("Mul", ["t", "s"], ["y"]))
        inits.append(numpy_helper.from_array(np.array(0.125, np.float32), "s"))
    out = [*a_shape[:-1], b_shape[-1]]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a_shape)),
                                            helper.make_tensor_value_info("b", TensorProto.FLOAT, list(b_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_matrix_products_with_an_odd_lane_axis_are_padded_and_exact():
    """A lane axis with no divisor of half a vector (197 and 131 prime, 53 below 64) is padded to whole vectors
    (_pad_lane_axis), with and without an epilogue, in a batched and a 2-D product; the padding must not leak into
    the result."""
    import woodpecker
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.schedule.apply import schedule

    assert cpu_defaults._lanes(197, 16, padded=True) == 16 and cpu_defaults._lanes(197, 16) == 1
    for a_shape, b_shape, scale in (((12, 197, 64), (12, 64, 197), True), ((3, 37, 20), (3, 20, 53), False),
                                    ((37, 20), (20, 131), False)):
        model = _matmul_model(a_shape, b_shape, scale)
        task = max(lower_graph(optimize(import_onnx(model))).tasks.values(), key=lambda t: t.flops)
        assert task.family in cpu_defaults.PADDED_FAMILIES, task.family
        knobs = cpu_defaults.default_knobs(task.family, analyze(task.kernel))
        assert b_shape[-1] % int(knobs[f"tile_{analyze(task.kernel).spatial[-1].name}"]) != 0, knobs
        assert "_pad" in schedule(task, None, "cpu").script()  # padded, not guarded
        rng = np.random.default_rng(len(a_shape))
        a, b = rng.standard_normal(a_shape).astype(np.float32), rng.standard_normal(b_shape).astype(np.float32)
        got = woodpecker.compile(model, vendor=False).run({"a": a, "b": b})["y"]
        np.testing.assert_allclose(got, (a @ b) * (0.125 if scale else 1.0), rtol=1e-4, atol=1e-4)


def _row_model(op: str, shape, dtype, **attrs):
    from onnx import TensorProto, helper, numpy_helper

    elem = {np.float32: TensorProto.FLOAT, np.int32: TensorProto.INT32}[dtype]
    inputs, inits = ["x"], []
    if op == "LayerNormalization":
        inputs += ["g", "beta"]
        inits = [numpy_helper.from_array(np.linspace(0.5, 1.5, shape[-1], dtype=np.float32), "g"),
                 numpy_helper.from_array(np.linspace(-0.1, 0.1, shape[-1], dtype=np.float32), "beta")]
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], **attrs)], "row",
                              [helper.make_tensor_value_info("x", elem, list(shape))],
                              [helper.make_tensor_value_info("y", elem, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def test_row_reductions_keep_one_partial_per_lane_and_agree_with_onnxruntime():
    """Reductions along a row with a divisor of at least half a vector reduce into per-lane partials (rfactor):
    layer norm over 768, softmax and max over 96, an integer sum over 64 (exact). A softmax row of no whole number of
    vectors (197) is split into vectors and a tail (kernels/norm.wpl softmax_rows), whose vectors reduce into
    partials too; a reduction over such a row stays a scalar chain. Results agree with onnxruntime."""
    import onnxruntime as ort

    import woodpecker
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.measure.correctness import relative_error
    from woodpecker.passes.pipeline import optimize
    from woodpecker.schedule.apply import schedule

    lanes = cpu_defaults.host_register_tile()[0]
    cases = [("LayerNormalization", (197, 768), np.float32, dict(axis=-1), True),
             ("Softmax", (40, 96), np.float32, dict(axis=-1), True),
             ("ReduceMax", (40, 96), np.float32, dict(keepdims=1), True),
             ("ReduceSum", (40, 64), np.int32, dict(keepdims=0), True),
             ("Softmax", (12, 197), np.float32, dict(axis=-1), True),
             ("ReduceMax", (12, 197), np.float32, dict(keepdims=1), False)]
    for op, shape, dtype, attrs, partials in cases:
        if op in ("ReduceMax", "ReduceSum"):
            from onnx import numpy_helper

            model = _row_model(op, shape, dtype, **attrs)
            model.graph.node[0].input.append("axes")
            model.graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), "axes"))
        else:
            model = _row_model(op, shape, dtype, **attrs)
        task = next(t for t in lower_graph(optimize(import_onnx(model))).tasks.values() if t.family == "row_reduce")
        split_row = "Ma" in {c.name for c in task.kernel.computes}  # softmax_rows's leading vectors
        whole_vectors = shape[-1] % (lanes // 2) == 0 or split_row
        assert split_row == (op == "Softmax" and shape[-1] % 16 != 0), op
        assert ("_rf" in schedule(task, None, "cpu").script()) == (partials and whole_vectors), op
        rng = np.random.default_rng(len(shape))
        x = (rng.integers(-1000, 1000, shape) if dtype == np.int32 else rng.standard_normal(shape) * 4).astype(dtype)
        if op == "ReduceMax":  # every row negative: a partial started at 0 instead of -inf would show
            x = -np.abs(x) - 1
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        want = session.run(None, {"x": x})[0]
        got = woodpecker.compile(model, vendor=False).run({"x": x})["y"]
        if dtype == np.int32:
            np.testing.assert_array_equal(got, want)
        else:
            assert relative_error(got, want) <= 1e-5, (op, shape)


def _conv_task(c: int, k: int, hw: int, r: int):
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize

    tasks = lower_graph(optimize(import_onnx(_conv(c, k, hw, r, 1, 1)))).tasks.values()
    return next(t for t in tasks if t.family == "conv2d_nchwc")


def test_wide_register_files_tile_two_output_channel_blocks_of_spatial_convolutions():
    """With 32 vector registers a 3x3 (or larger) convolution's tile takes two output-channel blocks where the rows
    are at least 7 pixels; not at 5x5, not on 1x1 layers, not with 16 registers, not on a first layer's 3 (or
    any fewer than 16) input channels."""
    def kb(c, k, hw, r, registers):
        return cpu_defaults.default_knobs("conv2d_nchwc", analyze(_conv_task(c, k, hw, r).kernel), 16, 8, registers)["tile_kb"]

    assert kb(32, 64, 13, 3, 32) == 2
    assert kb(32, 64, 13, 3, 16) == 1
    assert kb(32, 64, 7, 3, 32) == 2
    assert kb(32, 64, 5, 3, 32) == 1
    assert kb(32, 64, 28, 1, 32) == 1
    assert kb(32, 48, 28, 3, 32) == 1  # 3 blocks of 16: no pair
    assert kb(3, 64, 56, 3, 32) == 1  # VGG's first layer (at 56 here): 27 FMAs per accumulator
    assert kb(3, 64, 28, 7, 32) == 1
    assert kb(8, 64, 28, 3, 32) == 1
    assert kb(16, 64, 28, 3, 32) == 2


def test_two_channel_block_tiles_compute_what_onnxruntime_does(monkeypatch):
    """Numerics of the wide tile: a guarded row (13 = 8 + 5) and a 5x5 window. The register file is reported as
    32 vectors whatever the host, so that the tile is built here too."""
    import onnxruntime as ort

    import woodpecker
    from woodpecker.measure.correctness import relative_error

    lanes, _ = cpu_defaults.host_vector_file()
    monkeypatch.setattr(cpu_defaults, "host_vector_file", lambda: (lanes, 32))
    for c, k, hw, r in ((32, 64, 13, 3), (16, 32, 14, 5)):
        assert cpu_defaults.default_knobs("conv2d_nchwc", analyze(_conv_task(c, k, hw, r).kernel))["tile_kb"] == 2
        model = _conv(c, k, hw, r, 1, 1)
        x = np.random.default_rng(hw).standard_normal((1, c, hw, hw)).astype(np.float32)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        want = session.run(None, {"x": x})[0]
        got = woodpecker.compile(model, vendor=False).run({"x": x})["z"]
        assert relative_error(got, want) <= 1e-4, (c, k, hw, r)


def _shuffle_model(c: int, h: int, w: int):
    """A channel shuffle (reshape, transpose, reshape) and a transpose with a long innermost axis."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Reshape", ["x", "s5"], ["r"]), helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s4"], ["sh"]), helper.make_node("Relu", ["sh"], ["y"]),
             helper.make_node("Transpose", ["x"], ["z"], perm=[0, 2, 1, 3])]
    inits = [numpy_helper.from_array(np.array([1, 2, c // 2, h, w], np.int64), "s5"),
             numpy_helper.from_array(np.array([1, c, h, w], np.int64), "s4")]
    graph = helper.make_graph(nodes, "shuffle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, h, w]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, h, c, w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_data_movement_runs_as_a_nest_with_the_innermost_axis_as_vector(monkeypatch):
    """A shuffle's innermost axis (9 pixels) is the vector loop, so that source indices are affine in the lane; an
    innermost axis longer than a vector (70) keeps the flat loop. The loop above the vector loop stays serial (nest
    2) where the loops above it give each core 4 chunks: the shuffle's 58 channels, not the transpose's 7 rows.
    Every form computes the same numbers."""
    import onnxruntime as ort

    import woodpecker

    model = _shuffle_model(58, 7, 9)
    cm = woodpecker.compile(model, vendor=False)
    nests = sorted(int(k.knobs["nest"]) for k in cm.kernels if k.family == "injective")
    assert nests == [1, 2]
    wide = woodpecker.compile(_shuffle_model(58, 3, 70), vendor=False)
    assert sorted(int(k.knobs["nest"]) for k in wide.kernels if k.family == "injective") == [0, 0]
    feed = cm.random_inputs(0)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    default = list(cm.run(feed).values())
    flat_knobs = cpu_defaults.default_knobs

    def flat(family, *args, **kwargs):
        return {**flat_knobs(family, *args, **kwargs), **({"nest": 0} if family == "injective" else {})}

    monkeypatch.setattr(cpu_defaults, "default_knobs", flat)
    flat_cm = woodpecker.compile(model, vendor=False)
    assert all(int(k.knobs["nest"]) == 0 for k in flat_cm.kernels if k.family == "injective")
    for got in (default, list(flat_cm.run(feed).values())):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def _concat_model(c: int, hw: int):
    """Two 3x3 convolutions of one input (16 and 32 output channels), concatenated, plus the input's first 48
    channels, through a ReLU: data movement and element-wise work on blocked images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(c + hw)
    inits = [numpy_helper.from_array(rng.standard_normal((k, c, 3, 3)).astype(np.float32), f"w{k}") for k in (16, 32)]
    nodes = [helper.make_node("Conv", ["x", "w16"], ["a"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Conv", ["x", "w32"], ["b"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
             helper.make_node("Add", ["ab", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    graph = helper.make_graph(nodes, "concat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48, hw, hw])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_element_wise_kernels_on_blocked_images_split_their_rows_between_the_cores_and_are_exact(monkeypatch):
    """A concatenation and a residual addition on blocked images take the rows-first order where the rows give
    every core 4 chunks (the parallel loop then starts at the rows, as the convolutions' does), in every nest form,
    and compute onnxruntime's numbers at odd sizes (37 rows; 7 rows keep the channel order, and so does the
    conversion back to the model's NCHW output, not a blocked image)."""
    import onnxruntime as ort

    import woodpecker
    from woodpecker import config
    from woodpecker.measure.correctness import relative_error

    for hw in (37, 7):
        model = _concat_model(48, hw)
        with config.override(num_threads=2):  # 4 chunks per core: 8 rows
            cm = woodpecker.compile(model, vendor=False)
        knobs = {k.name: k.knobs for k in cm.kernels if k.family == "injective"}
        assert int(knobs["fused_concat_add_relu"]["rows_first"]) == int(hw >= 8), knobs
        assert int(knobs["layout_transform_1"]["rows_first"]) == 0, knobs
        feed = cm.random_inputs(0)
        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        # relative to the output's largest magnitude: its 3x3 convolution runs by Winograd
        assert relative_error(cm.run(feed)["y"], want) < 1e-5

    from woodpecker.schedule.apply import schedule
    from woodpecker.space.space import space_for_task

    task, _ = _task_io(_concat_model(48, 37), "injective")
    knobs = dict(space_for_task(task).default)
    for rows_first, first in ((1, "n_h"), (0, "n_c")):
        (par,) = _parallel_loop_names(schedule(task, {**knobs, "rows_first": rows_first}))
        assert par.startswith(first), (rows_first, par)

    shipped = cpu_defaults.default_knobs
    model = _concat_model(48, 37)
    feed = {"x": np.random.default_rng(1).standard_normal((1, 48, 37, 37)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    for nest in (0, 1, 2):
        def forced(family, *args, nest=nest, **kwargs):
            knobs = shipped(family, *args, **kwargs)
            return {**knobs, "nest": nest, "rows_first": 1} if family == "injective" else knobs

        monkeypatch.setattr(cpu_defaults, "default_knobs", forced)
        got = woodpecker.compile(model, vendor=False).run(feed)["y"]
        assert relative_error(got, want) < 1e-5, f"nest {nest}"


def _task_io(model, family: str = "conv2d_nchwc"):
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.measure.reference import reference_io
    from woodpecker.passes.pipeline import optimize

    lowered = lower_graph(optimize(import_onnx(model)))
    key, task = next((k, t) for k, t in lowered.tasks.items() if t.family == family)
    node, call = lowered.example(key)
    return task, reference_io(task, node, lowered.graph, call.args)


def _loops(mod) -> list:
    """Every loop (tirx.For) of a scheduled module."""
    import tvm

    from woodpecker.schedule.tirwalk import nodes

    return [n for func in mod.functions.values() for n in nodes(func.body) if isinstance(n, tvm.tirx.For)]


def _partition_hints(mod) -> list[str]:
    """The loop variables that carry TVM's loop-partition hint in a scheduled module."""
    return [n.loop_var.name for n in _loops(mod) if "pragma_loop_partition_hint" in n.annotations]


def test_the_guarded_last_trip_of_a_non_dividing_tile_is_peeled_and_exact():
    """A tile that does not divide its axis (13 = 8 + 5 pixels; 3 input-channel blocks split by 2) guards its last
    trip; the serial outer loops of such splits carry the partition hint (so that the full tiles run unguarded,
    their accumulators in registers), a split fused into the parallel loop does not, and every form computes the
    reference's numbers."""
    import tvm

    from woodpecker.hw.host import llvm_target
    from woodpecker.measure.correctness import relative_error
    from woodpecker.schedule.apply import schedule
    from woodpecker.space.space import space_for_task

    task, (inputs, expected) = _task_io(_conv(48, 32, 13, 3, 1, 1))
    default = dict(space_for_task(task).default)
    cases = [({"tile_x": 8, "tile_kb": 1, "parallel": 2}, {"x_0"}),  # rows 8 + 5: x outside the parallel loop
             ({"tile_x": 8, "tile_kb": 1, "tile_y": 4, "parallel": 3, "split_cb": 2}, {"x_0", "cb_0"}),  # y's fused
             ({"tile_x": 8, "tile_kb": 1, "parallel": 4}, set()),  # x's split in the parallel loop: stays guarded
             ({"tile_x": 13, "split_cb": 3}, set())]  # every split divides
    dev = tvm.cpu()
    for knobs, peeled in cases:
        mod = schedule(task, {**default, **knobs})
        assert set(_partition_hints(mod)) == peeled, (knobs, _partition_hints(mod))
        ex = tvm.compile(mod, target=llvm_target())
        out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
        ex.mod[task.name](*[tvm.runtime.tensor(a, dev) for a in inputs], out)
        assert relative_error(out.numpy(), expected) < 1e-4, knobs


def _parallel_loop_names(mod) -> list[str]:
    import tvm

    return [n.loop_var.name for n in _loops(mod) if n.kind == tvm.tirx.ForKind.PARALLEL]


def test_rows_first_convolutions_pad_each_row_once_and_are_exact():
    """The rows-first outer order ([n, y, kb, x], the parallel loop over n and y: each chunk's padded input rows
    serve every output block) computes the reference's numbers with a non-dividing row tile, a stride and groups,
    and the channel order stays as it was."""
    import tvm

    from woodpecker.hw.host import llvm_target
    from woodpecker.measure.correctness import relative_error
    from woodpecker.schedule.apply import schedule
    from woodpecker.space.space import space_for_task

    dev = tvm.cpu()
    for model in (_conv(48, 32, 13, 3, 1, 1), _conv(32, 64, 15, 3, 1, 2), _conv(64, 64, 11, 3, 2, 1)):
        task, (inputs, expected) = _task_io(model)
        default = dict(space_for_task(task).default)
        for knobs in ({"outer_order": "rows", "parallel": 2, "tile_y": 2, "tile_x": 4},
                      {"outer_order": "rows", "parallel": 3, "tile_y": 1, "tile_x": 8, "tile_kb": 2},
                      {"outer_order": "channels", "parallel": 3, "tile_y": 2, "tile_x": 4, "tile_kb": 1}):
            knobs = {**default, **knobs}
            if task.param_shapes[-1][1] % int(knobs.get("tile_kb", 1)):
                knobs["tile_kb"] = 1
            mod = schedule(task, knobs)
            (par,) = _parallel_loop_names(mod)
            first = ["n", "y"] if knobs["outer_order"] == "rows" else ["n", "kb"]
            assert par.startswith("_".join(first)), (knobs, par)
            ex = tvm.compile(mod, target=llvm_target())
            out = tvm.runtime.tensor(np.zeros(expected.shape, expected.dtype), dev)
            ex.mod[task.name](*[tvm.runtime.tensor(a, dev) for a in inputs], out)
            assert relative_error(out.numpy(), expected) < 1e-4, knobs


def test_the_default_outer_order_is_rows_where_the_rows_give_every_core_four_chunks():
    from woodpecker import config

    def order(c, k, hw, r, threads):
        with config.override(num_threads=threads):
            knobs = cpu_defaults.default_knobs("conv2d_nchwc", analyze(_conv_task(c, k, hw, r).kernel), 16, 8, 32)
        return knobs["outer_order"], knobs["parallel"]

    assert order(64, 64, 56, 3, 2) == ("rows", 2)
    assert order(512, 512, 14, 3, 2) == ("rows", 2)
    assert order(512, 512, 14, 3, 16)[0] == "channels"  # 14 rows for 16 threads
    assert order(512, 512, 7, 3, 2)[0] == "channels"  # 7x7: 4 row tiles of 2 on 2 cores
    # a 1x1 pads nothing, but its cores then read the rows they wrote in the layer before (_outer_order)
    assert order(256, 64, 56, 1, 2) == ("rows", 2)
    assert order(256, 64, 7, 1, 2)[0] == "channels"
    # a simulated target (its own register file, one core): only where a window is padded
    with config.override(num_threads=2):
        simulated = cpu_defaults.default_knobs("conv2d_nchwc", analyze(_conv_task(256, 64, 56, 1).kernel), 1, 8)
    assert simulated["outer_order"] == "channels"


def _depthwise_pool(c: int, hw: int, stride: int):
    """A 3x3 depthwise convolution (stride `stride`, padded) and a 3x3 max pooling of stride 2 (padded)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(c + hw)
    w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
    mid = (hw + 2 - 3) // stride + 1
    out = (mid + 2 - 3) // 2 + 1
    nodes = [helper.make_node("Conv", ["x", "w"], ["d"], kernel_shape=[3, 3], strides=[stride] * 2, pads=[1] * 4,
                              group=c),
             helper.make_node("MaxPool", ["d"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)]
    graph = helper.make_graph(nodes, "dw_pool",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, out, out])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_depthwise_and_pooling_layers_split_their_rows_between_the_cores_and_are_exact():
    """Depthwise convolutions and pooling take the rows-first order where the rows give every core 4 chunks (each
    core then reads the rows it wrote in the layer before), with the parallel loop over [n, y]; the numbers are
    onnxruntime's at odd sizes (37 and 19 rows, a stride of 2, 48 channels: 3 blocks of 16)."""
    import onnxruntime as ort

    import woodpecker
    from woodpecker import config
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize

    for c, hw, stride in ((48, 37, 1), (32, 38, 2), (48, 19, 1)):
        model = _depthwise_pool(c, hw, stride)
        with config.override(num_threads=2):
            tasks = lower_graph(optimize(import_onnx(model))).tasks.values()
            for task in tasks:
                if task.family in ("depthwise_nchwc", "pool2d"):
                    knobs = cpu_defaults.default_knobs(task.family, analyze(task.kernel), 16, 8, 32)
                    rows = task.param_shapes[-1][2] // int(knobs.get("tile_y", 1))
                    expected = ("rows", 2) if rows >= 8 else ("channels", knobs["parallel"])
                    assert (knobs["outer_order"], knobs["parallel"]) == expected, (task.name, rows, knobs)
        x = np.random.default_rng(hw).standard_normal((1, c, hw, hw)).astype(np.float32)
        got = woodpecker.compile(model, vendor=False).run({"x": x})["y"]
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        want = session.run(None, {"x": x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{c}@{hw}/{stride}")


def test_a_non_dividing_split_stays_out_of_the_parallel_loop_once_every_core_has_two_chunks():
    """512@7 with 2-row tiles (7 = 3 x 2 + 1): the parallel loop stops at the channel blocks (16 chunks for 2
    threads), so that the row split is serial and its last trip peeled; with 16 threads 16 chunks are too few and
    the rows are fused in as before; a dividing split (14 rows in tiles of 2) is fused as before."""
    from woodpecker import config

    def parallel(c, k, hw, threads):
        with config.override(num_threads=threads):
            return cpu_defaults.default_knobs("conv2d_nchwc", analyze(_conv_task(c, k, hw, 3).kernel), 16, 8, 32)

    knobs = parallel(512, 512, 7, 2)
    assert (knobs["tile_y"], knobs["tile_kb"], knobs["parallel"]) == (2, 2, 2)
    assert parallel(512, 512, 7, 16)["parallel"] == 3
    assert parallel(64, 64, 14, 16)["parallel"] >= 3
