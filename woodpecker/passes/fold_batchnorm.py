"""BatchNorm folding: per-channel affine transforms are folded into the convolution or dense layer before them.

Step 1 rewrites every batch_norm as x * k + (beta - mean * k), k = gamma / sqrt(var + eps).
Step 2 moves the multiplication towards the producer and folds it into the weights:
  conv(x, W) * k          -> conv(x, W * k[:, None, None, None])     (k per output channel)
  dense(x, W) * k         -> dense(x, W * k[:, None])
  (y + c) * k             -> y * k + c * k                           (constants c, k)
  (y + c1) + c2           -> y + (c1 + c2)
Each rewrite needs the intermediate value to have no other user. What is left is a bias add, which the epilogue
fusion folds into the convolution's kernel.
"""

from __future__ import annotations

import numpy as np

from woodpecker.ir.graph import Graph, Node
from woodpecker.passes.dce import eliminate_dead_code
from woodpecker.passes.rewrite import Rewriter


def _decompose(graph: Graph) -> Graph:
    rw = Rewriter(graph)
    for node in graph.nodes:
        if node.op != "batch_norm":
            rw.copy(node)
            continue
        x, gamma, beta, mean, var = (rw.map(v) for v in node.inputs)
        params = [gamma, beta, mean, var]
        if not all(rw.b.is_constant(p) for p in params):
            # Run-time statistics (rare): compute k and the shift in the graph.
            rank = rw.b.type_of(x).rank
            shape = (1, -1) + (1,) * (rank - 2)
            c = rw.b.type_of(gamma).shape[0]
            shape = tuple(c if d == -1 else d for d in shape)
            eps = rw.b.constant(np.float32(node.attrs["epsilon"]), "eps")
            std = rw.emit("sqrt", [rw.emit("add", [var, eps])])
            k = rw.emit("div", [gamma, std])
            shift = rw.emit("sub", [beta, rw.emit("mul", [mean, k])])
            k = rw.emit("reshape", [k], {"shape": shape})
            shift = rw.emit("reshape", [shift], {"shape": shape})
        else:
            g, b, m, v = (rw.b.constants[p].astype(np.float64) for p in params)
            k_arr = g / np.sqrt(v + node.attrs["epsilon"])
            rank = rw.b.type_of(x).rank
            shape = (1, -1) + (1,) * (rank - 2)
            k = rw.b.constant(k_arr.astype(np.float32).reshape(shape), node.name + "_scale")
            shift = rw.b.constant((b - m * k_arr).astype(np.float32).reshape(shape), node.name + "_shift")
        y = rw.emit("mul", [x, k], name=node.name)
        rw.replace(node.outputs[0], rw.emit("add", [y, shift], name=node.name))
    return rw.finish()


def _per_channel(k: np.ndarray, rank: int, channels: int, axis: int) -> np.ndarray | None:
    """k as a 1-D per-channel vector if it broadcasts along `axis` only (or is a scalar), else None."""
    if k.ndim > rank:
        return None
    full = k.reshape((1,) * (rank - k.ndim) + k.shape)
    for d, n in enumerate(full.shape):
        if d != axis and n != 1:
            return None
    vec = full.reshape(-1)
    if vec.size == 1:
        return np.full(channels, vec[0], dtype=np.float32)
    return vec if vec.size == channels else None


def _fold_once(graph: Graph) -> tuple[Graph, bool]:
    rw = Rewriter(graph)
    changed = False
    outputs = set(graph.outputs)
    for node in graph.nodes:
        if node.op in ("mul", "add") and len(node.inputs) == 2:
            a, c = (rw.map(v) for v in node.inputs)
            if rw.b.is_constant(a) and not rw.b.is_constant(c):
                a, c = c, a
            prod: Node | None = rw.producer.get(a)
            # Values keep their names when copied, so the old graph's use counts apply; values emitted in this
            # round have no count yet and wait for the next round.
            single = rw.uses.get(a, 0) == 1 and a not in outputs
            if rw.b.is_constant(c) and prod is not None and single:
                new = _fold_pair(rw, node, prod, a, c)
                if new is not None:
                    rw.replace(node.outputs[0], new)
                    changed = True
                    continue
        rw.copy(node)
    return rw.finish(), changed


def _fold_pair(rw: Rewriter, node: Node, prod: Node, a: str, c: str) -> str | None:
    k = rw.b.constants[c]
    out_t = rw.b.type_of(node.outputs[0]) if node.outputs[0] in rw.b.types else None
    if out_t is None or out_t.shape != rw.b.type_of(a).shape:
        return None  # the constant would broadcast the value to a larger shape
    if node.op == "mul" and prod.op == "conv2d" and rw.b.is_constant(prod.inputs[1]):
        w = rw.b.constants[prod.inputs[1]]
        vec = _per_channel(k, 4, w.shape[0], 1)
        if vec is None:
            return None
        w2 = rw.b.constant((w * vec.reshape(-1, 1, 1, 1)).astype(w.dtype), prod.inputs[1] + "_folded")
        return rw.emit("conv2d", [prod.inputs[0], w2], prod.attrs, name=prod.name)
    if node.op == "mul" and prod.op == "dense" and rw.b.is_constant(prod.inputs[1]):
        w = rw.b.constants[prod.inputs[1]]
        vec = _per_channel(k, 2, w.shape[0], 1)
        if vec is None:
            return None
        w2 = rw.b.constant((w * vec.reshape(-1, 1)).astype(w.dtype), prod.inputs[1] + "_folded")
        return rw.emit("dense", [prod.inputs[0], w2], prod.attrs, name=prod.name)
    if prod.op == "add":
        y, c1 = prod.inputs
        if rw.b.is_constant(y):
            y, c1 = c1, y
        if not rw.b.is_constant(c1) or rw.b.is_constant(y):
            return None
        if rw.b.type_of(y).shape != out_t.shape:
            return None
        if node.op == "mul":  # (y + c1) * k -> y * k + c1 * k
            scaled = rw.emit("mul", [y, c], name=node.name)
            return rw.emit("add", [scaled, rw.emit("mul", [c1, c])], name=node.name)
        # (y + c1) + c -> y + (c1 + c)
        return rw.emit("add", [y, rw.emit("add", [c1, c])], name=node.name)
    return None


def fold_batchnorm(graph: Graph) -> Graph:
    graph = eliminate_dead_code(_decompose(graph))
    for _ in range(8):  # each round moves a multiplication one producer further; chains are short
        graph, changed = _fold_once(graph)
        graph = eliminate_dead_code(graph)
        if not changed:
            break
    return graph
