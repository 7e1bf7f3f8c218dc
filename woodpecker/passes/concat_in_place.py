"""Concatenation without a copy: the producers of a concat's inputs write straight into their slices of its output.

Why: a concat that no consumer could read through an index map (its consumer is a convolution or a dense layer,
whose templates take whole tensors) is a kernel of its own that reads every input and writes it again, one more
pass over memory per fire module (SqueezeNet) or inception block. When the concatenated axis is the outermost one
that is not 1 (channels at batch 1, NCHW or NCHW[b]c), each input is one contiguous slice of the output, so the
memory planner can place each input at its slice and the concat has nothing left to do.

Rule. A standalone concat is marked `in_place` (lowering then emits no kernel, woodpecker.lowering.model) when:
  - every axis before the concatenated one is 1 (each input is a contiguous byte range of the output);
  - every slice starts on an ALIGN boundary (TVM's kernels load their arguments with aligned vector loads);
  - every input is written by a kernel (not a model input, a constant, a reshape view or another in-place concat),
    is no model output, is read by no reshape view, and belongs to no other in-place concat (one placement each).
Only targets with one flat arena take it (PassOptions.concat_in_place): the host CPU; a GPU's kernels take no byte
offset into a buffer (woodpecker.runtime.memory.plan_buffers), and the RISC-V firmware keeps the copy.
"""

from __future__ import annotations

import numpy as np

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph, Node
from woodpecker.runtime.memory import ALIGN


def slice_offsets(node: Node, graph: Graph) -> list[int]:
    """Byte offset of each input's slice in the concat's output."""
    axis = int(node.attrs["axis"]) % graph.types[node.outputs[0]].rank
    offsets, at = [], 0
    for v in node.inputs:
        t = graph.types[v]
        offsets.append(at)
        at += int(np.prod(t.shape[axis:], dtype=np.int64)) * np.dtype(t.dtype).itemsize
    return offsets


def concat_in_place(graph: Graph) -> Graph:
    producers = {out: n for n in graph.nodes for out in n.outputs}
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    taken: set[str] = set()
    in_place: set[str] = set()

    def writable(v: str) -> bool:
        p = producers.get(v)
        if p is None or v in outputs or v in taken or v in graph.constants or p.name in in_place:
            return False
        if ops.is_view(p):
            return False
        return not any(ops.is_view(c) for c in consumers.get(v, []))

    nodes = []
    for node in graph.nodes:
        if node.op == "concat" and _contiguous(node, graph) and len(set(node.inputs)) == len(node.inputs) \
                and all(writable(v) for v in node.inputs) and all(o % ALIGN == 0 for o in slice_offsets(node, graph)):
            node = node.with_(attrs={**node.attrs, "in_place": True})
            taken.update(node.inputs)
            in_place.add(node.name)
        nodes.append(node)
    return graph.replace(nodes=tuple(nodes)) if in_place else graph


def _contiguous(node: Node, graph: Graph) -> bool:
    out = graph.types[node.outputs[0]]
    axis = int(node.attrs["axis"]) % out.rank
    return all(d == 1 for d in out.shape[:axis]) and all(graph.types[v].dtype == out.dtype for v in node.inputs)
