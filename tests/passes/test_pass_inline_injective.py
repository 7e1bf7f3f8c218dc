"""Data-movement inlining: a channel shuffle becomes an index map read by its consumers, not a chain of copies."""

from __future__ import annotations

import numpy as np

from woodpecker.lowering.model import KernelCall, lower_graph
from woodpecker.passes import inline_injective as mod
from woodpecker.passes import pipeline
from woodpecker.passes.pipeline import PassOptions, optimize


def _shuffle_unit(h, channels: int = 6):
    """ShuffleNetV2's tail: concat two branches, shuffle the channels (reshape, transpose, reshape), split in two;
    one half feeds a 1x1 convolution, the other is a graph output through a relu."""
    c = channels
    inits = dict(shape1=np.array([1, 2, c, 5, 5], np.int64), shape2=np.array([1, 2 * c, 5, 5], np.int64),
                 w=h.rand(c, c, 1, 1, seed=1))
    return h.onnx_graph(
        [("Concat", ["a", "b"], ["cat"], {"axis": 1}),
         ("Reshape", ["cat", "shape1"], ["r1"], {}),
         ("Transpose", ["r1"], ["t"], {"perm": [0, 2, 1, 3, 4]}),
         ("Reshape", ["t", "shape2"], ["r2"], {}),
         ("Split", ["r2"], ["s1", "s2"], {"axis": 1}),
         ("Relu", ["s1"], ["y1"], {}),
         ("Conv", ["s2", "w"], ["y2"], {})],
        {"a": [1, c, 5, 5], "b": [1, c, 5, 5]}, ["y1", "y2"], inits)


def _kernels(graph):
    lowered = lower_graph(graph)
    return [lowered.tasks[s.task] for s in lowered.steps if isinstance(s, KernelCall)]


def test_a_channel_shuffle_is_read_in_place_by_its_consumers(h, monkeypatch):
    g = _shuffle_unit(h)
    off = optimize(g, PassOptions(blocked_layout=False, fuse=True))
    h.assert_same(g, off)
    kernels = _kernels(off)
    with monkeypatch.context() as m:  # the same pipeline without the inlining: every copy is a kernel
        m.setattr(pipeline, "inline_injective", lambda graph: graph)
        assert len(_kernels(optimize(g, PassOptions(blocked_layout=False, fuse=True)))) >= 5
    # the relu half reads the shuffle through an index map (one kernel), the convolution's input is one kernel
    # computing its slice of the shuffle straight from the concat's inputs; no copy of the whole shuffle is left
    assert len(kernels) == 3, [k.name for k in kernels]
    fused = [n for n in off.nodes if n.op == "fused" and n.body[0].op == "concat"]
    assert fused and all({"a", "b"} <= set(n.inputs) for n in fused)


def test_an_anchor_input_or_a_graph_output_stays_a_kernel(h):
    inits = dict(w=h.rand(4, 4, 1, 1, seed=1))
    g = h.onnx_graph([("Transpose", ["x"], ["t"], {"perm": [0, 1, 3, 2]}), ("Conv", ["t", "w"], ["y"], {}),
                      ("Transpose", ["x"], ["z"], {"perm": [0, 1, 3, 2]})],
                     {"x": [1, 4, 3, 5]}, ["y", "z"], inits)
    out = mod.inline_injective(g)
    h.assert_same(g, out)
    assert out is g  # the first transpose feeds an anchor (whole tensors), the second is a graph output


def test_a_chain_longer_than_the_limit_is_cut(h, monkeypatch):
    monkeypatch.setattr(mod, "MAX_MEMBERS", 3)
    nodes, prev = [], "x"
    for i in range(6):
        nodes.append(("Transpose", [prev], [f"t{i}"], {"perm": [0, 1, 3, 2]}))
        prev = f"t{i}"
    nodes.append(("Relu", [prev], ["y"], {}))
    g = h.onnx_graph(nodes, {"x": [1, 2, 3, 4]}, ["y"])
    out = mod.inline_injective(g)
    h.assert_same(g, out)
    assert all(len(n.body) <= 3 for n in out.nodes if n.op == "fused")
    assert 1 < len(out.nodes) < 7  # cut into a few kernels, not one per transpose and not one of seven members


def test_the_inlined_kernels_compute_the_shuffle(h):
    """Lowered and built: the index maps (reshape, transpose, slice of a concat) against the reference interpreter."""
    from woodpecker.codegen.build import build_tasks
    from woodpecker.lowering.to_runtime import to_program
    from woodpecker.runtime.compiled import CompiledModel
    from woodpecker.targets import resolve

    g = _shuffle_unit(h, channels=3)
    opt = optimize(g, PassOptions(blocked_layout=False, fuse=True))
    lowered = lower_graph(opt)
    target = resolve("host")
    executable, _ = build_tasks(lowered.tasks, {}, target.tvm_target())
    program, constants = to_program(lowered)
    cm = CompiledModel(executable.mod, program, constants, [], {}, executable=executable)
    feed = h.random_inputs(g)
    got = cm.run(feed)
    from woodpecker.ir.interpreter import interpret

    want = interpret(g, feed)
    names = g.output_names or g.outputs
    for name, value in zip(names, want, strict=True):
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5)
