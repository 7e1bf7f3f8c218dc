"""Region of canonical nodes -> an equivalent standalone ONNX model (for onnxruntime as a vendor implementation).

A region is what one woodpecker kernel computes (a fused group, or a single node). Its run-time inputs become ONNX
graph inputs with the region's own buffer shapes and layouts, constants become initializers, so an onnxruntime
session can run the region on the very buffers the generated kernel would use. Blocked-layout tensors are
converted to NCHW and back inside the exported model: that conversion is part of the vendor's cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from woodpecker.ir import ops
from woodpecker.ir.graph import Node, TensorType

OPSET = 17
_DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "int64": TensorProto.INT64,
           "int32": TensorProto.INT32, "bool": TensorProto.BOOL, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
          "reciprocal": "Reciprocal", "neg": "Neg", "abs": "Abs", "floor": "Floor", "ceil": "Ceil", "erf": "Erf",
          "softplus": "Softplus", "hard_swish": "HardSwish", "identity": "Identity"}
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max", "minimum": "Min",
           "equal": "Equal", "less": "Less", "greater": "Greater"}


class NotExportable(Exception):
    """The region has a form onnxruntime cannot express exactly; it gets no onnxruntime choice."""


class _Exporter:
    def __init__(self, types: Mapping[str, TensorType], constants: Mapping[str, np.ndarray]) -> None:
        self.types = types
        self.constants = constants
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.names: dict[str, str] = {}
        # blocked (NCHWc) ONNX value -> the same tensor in NCHW: a region set exported together (a merged run of
        # calls) then converts at its edges only, and ONNX's Conv + Add + Relu stay adjacent for onnxruntime to fuse
        self.plain: dict[str, str] = {}
        self._n = 0

    def fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, value: np.ndarray, base: str = "c") -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def value(self, v: str) -> str:
        if v in self.names:
            return self.names[v]
        if v in self.constants:
            name = self.const(self.constants[v], "w")
            self.names[v] = name
            return name
        raise NotExportable(f"value {v} is not available")

    def op(self, op_type: str, inputs: Sequence[str], **attrs) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    # -- layout helpers ------------------------------------------------------------------------------------------
    def unblock(self, x: str, shape5: Sequence[int]) -> str:
        if x in self.plain:
            return self.plain[x]
        n, cb, h, w, b = shape5
        t = self.op("Transpose", [x], perm=[0, 1, 4, 2, 3])
        y = self.op("Reshape", [t, self.const(np.array([n, cb * b, h, w], np.int64), "shape")])
        self.plain[x] = y
        return y

    def block(self, x: str, shape4: Sequence[int], b: int) -> str:
        n, c, h, w = shape4
        r = self.op("Reshape", [x, self.const(np.array([n, c // b, b, h, w], np.int64), "shape")])
        y = self.op("Transpose", [r], perm=[0, 1, 3, 4, 2])
        self.plain[y] = x
        return y

    def _layout_transform(self, x: str, shape: Sequence[int], a: Mapping) -> str:
        """NCHW <-> NCHW[b]c; padded blocks (attribute `channels`) gain zero channels on the way in and lose them
        on the way out."""
        b = a["block"]
        if a["to_blocked"]:
            n, c, h, w = shape
            cp = ops.padded_channels(c, b)
            if cp != c:
                x = self.op("Pad", [x, self.const(np.array([0, 0, 0, 0, 0, cp - c, 0, 0], np.int64), "pads")])
            return self.block(x, (n, cp, h, w), b)
        y = self.unblock(x, shape)
        channels = int(a.get("channels", shape[1] * shape[4]))
        if channels == shape[1] * shape[4]:
            return y
        return self.op("Slice", [y, self.const(np.array([0], np.int64)), self.const(np.array([channels], np.int64)),
                                 self.const(np.array([1], np.int64))])

    def plain_inputs(self, node: Node) -> list[str] | None:
        """The NCHW forms of an elementwise node's blocked inputs (constants converted), or None where one has
        none: the node is then computed in the blocked layout."""
        out_t = self.types[node.outputs[0]]
        if out_t.rank != 5 or out_t.layout == "":
            return None
        b = out_t.shape[4]
        plains = []
        for v in node.inputs:
            t = self.types[v]
            if v in self.constants:
                c = np.asarray(self.constants[v])
                if c.ndim == 0:
                    plains.append(self.value(v))
                    continue
                if c.ndim != 5 or c.shape[4] not in (1, b) or (c.shape[4] == 1 and c.shape[1] != 1):
                    return None
                n_, cb, h, w, bb = c.shape
                plains.append(self.const(np.ascontiguousarray(c.transpose(0, 1, 4, 2, 3).reshape(n_, cb * bb, h, w))))
            elif t.rank == 5 and t.shape[4] == b and self.value(v) in self.plain:
                plains.append(self.plain[self.value(v)])
            else:
                return None
        return plains

    def blocked_result(self, y_plain: str, node: Node) -> str:
        n, cb, h, w, b = self.types[node.outputs[0]].shape
        return self.block(y_plain, (n, cb * b, h, w), b)

    def prune(self, result: str) -> None:
        """Drop the nodes `result` does not depend on (the unused blocked twins of NCHW values)."""
        needed, kept = {result}, []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(node.input)
        self.nodes = kept[::-1]
        self.inits = [t for t in self.inits if t.name in needed]

    # -- nodes ---------------------------------------------------------------------------------------------------
    def emit(self, node: Node) -> None:
        a = node.attrs
        ins = [self.value(v) for v in node.inputs]
        in_t = [self.types[v] for v in node.inputs]
        out_t = self.types[node.outputs[0]]
        op = node.op
        plains = self.plain_inputs(node) if op in _UNARY or op in _BINARY else None
        if plains is not None:
            y = self.blocked_result(self.op(_UNARY[op] if op in _UNARY else _BINARY[op], plains), node)
        elif op in _UNARY:
            y = self.op(_UNARY[op], ins)
        elif op in _BINARY:
            y = self.op(_BINARY[op], ins)
        elif op == "clip":
            args = [ins[0], self.const(np.float32(a["min"]) if a.get("min") is not None else np.float32(-np.inf)),
                    self.const(np.float32(a["max"]) if a.get("max") is not None else np.float32(np.inf))]
            y = self.op("Clip", args)
        elif op == "leaky_relu":
            y = self.op("LeakyRelu", ins, alpha=float(a.get("alpha", 0.01)))
        elif op == "elu":
            y = self.op("Elu", ins, alpha=float(a.get("alpha", 1.0)))
        elif op == "hard_sigmoid":
            y = self.op("HardSigmoid", ins, alpha=float(a.get("alpha", 0.2)), beta=float(a.get("beta", 0.5)))
        elif op == "gelu":
            x = ins[0]
            if a.get("approximate", "none") == "tanh":
                inner = self.op("Mul", [self.op("Add", [x, self.op("Mul", [self.const(np.float32(0.044715)),
                                                                           self.op("Pow", [x, self.const(np.float32(3.0))])])]),
                                        self.const(np.float32(np.sqrt(2 / np.pi)))])
                t = self.op("Tanh", [inner])
            else:
                t = self.op("Erf", [self.op("Div", [x, self.const(np.float32(np.sqrt(2.0)))])])
            y = self.op("Mul", [self.op("Mul", [x, self.const(np.float32(0.5))]),
                                self.op("Add", [t, self.const(np.float32(1.0))])])
        elif op == "cast":
            y = self.op("Cast", ins, to=_DTYPES[a["to"]])
        elif op == "where":
            y = self.op("Where", ins)
        elif op == "reshape":
            y = self.op("Reshape", [ins[0], self.const(np.array(a["shape"], np.int64), "shape")])
        elif op == "transpose":
            y = self.op("Transpose", ins, perm=list(a["perm"]))
        elif op == "slice":
            ends = [e if e >= 0 else -(2**62) for e in a["ends"]]  # canonical -1 means "before index 0"
            y = self.op("Slice", [ins[0], self.const(np.array(a["starts"], np.int64)), self.const(np.array(ends, np.int64)),
                                  self.const(np.arange(len(ends), dtype=np.int64)), self.const(np.array(a["steps"], np.int64))])
        elif op == "concat":
            plains = self.plain_inputs(node) if int(a["axis"]) == 1 else None  # blocks of equal size: C = blocks
            y = self.blocked_result(self.op("Concat", plains, axis=1), node) if plains is not None else \
                self.op("Concat", ins, axis=int(a["axis"]))
        elif op == "pad":
            y = self.op("Pad", [ins[0], self.const(np.array(a["pads"], np.int64)),
                                self.const(np.array(a.get("value", 0.0), dtype=in_t[0].dtype))], mode=a.get("mode", "constant"))
        elif op == "gather":
            y = self.op("Gather", ins, axis=int(a["axis"]))
        elif op == "expand":
            y = self.op("Expand", [ins[0], self.const(np.array(a["shape"], np.int64), "shape")])
        elif op == "layout_transform":
            y = self._layout_transform(ins[0], in_t[0].shape, a)
        elif op == "conv2d":
            y = self.op("Conv", ins, strides=list(a["strides"]), pads=_onnx_pads(a["pads"]),
                        dilations=list(a["dilations"]), group=int(a.get("groups", 1)))
        elif op in ("conv2d_nchwc", "conv2d_winograd_nchwc", "depthwise_conv2d_nchwc"):
            y = self._blocked_conv(node, ins, in_t, out_t)
        elif op == "dense":
            y = self.op("Gemm", ins, transB=1)
        elif op == "dense_packed":
            w = self.constants[node.inputs[1]]
            nb, k, b = w.shape
            y = self.op("Gemm", [ins[0], self.const(np.ascontiguousarray(w.transpose(0, 2, 1).reshape(nb * b, k)), "w")], transB=1)
        elif op == "batch_matmul":
            x, w = ins
            if a.get("trans_a"):
                x = self.op("Transpose", [x], perm=[0, 2, 1])
            if a.get("trans_b"):
                w = self.op("Transpose", [w], perm=[0, 2, 1])
            y = self.op("MatMul", [x, w])
        elif op in ("max_pool2d", "avg_pool2d"):
            y = self._pool(node, ins, in_t)
        elif op in ("global_avg_pool", "global_max_pool"):
            x, blocked = ins[0], in_t[0].rank == 5
            if blocked:
                x = self.unblock(x, in_t[0].shape)
            y = self.op("GlobalAveragePool" if op == "global_avg_pool" else "GlobalMaxPool", [x])
            if blocked:
                y = self.block(y, (in_t[0].shape[0], in_t[0].shape[1] * in_t[0].shape[4], 1, 1), in_t[0].shape[4])
        elif op == "lrn":
            y = self.op("LRN", ins, size=int(a["size"]), alpha=float(a["alpha"]), beta=float(a["beta"]), bias=float(a["bias"]))
        elif op in ("softmax", "log_softmax"):
            y = self.op("Softmax" if op == "softmax" else "LogSoftmax", ins, axis=1)
        elif op == "layer_norm":
            y = self.op("LayerNormalization", ins, axis=-1, epsilon=float(a["epsilon"]))
        elif op == "reduce":
            kind = a["kind"]
            if kind == "sum":
                y = self.op("ReduceSum", [ins[0], self.const(np.array([1], np.int64))], keepdims=0)
            else:
                name = {"mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin", "sum_square": "ReduceSumSquare"}[kind]
                y = self.op(name, ins, axes=[1], keepdims=0)
        else:
            raise NotExportable(f"operator {op} has no onnxruntime form")
        self.names[node.outputs[0]] = y

    def _blocked_conv(self, node: Node, ins, in_t, out_t) -> str:
        a = node.attrs
        x = self.unblock(ins[0], in_t[0].shape)
        plain, groups, _ = ops.plain_conv_weight(node.op, self.constants[node.inputs[1]], a)
        y = self.op("Conv", [x, self.const(np.ascontiguousarray(plain), "w")], strides=list(a["strides"]),
                    pads=_onnx_pads(a["pads"]), dilations=list(a["dilations"]), group=groups)
        n, kb_, oh, ow, ob_ = out_t.shape
        return self.block(y, (n, kb_ * ob_, oh, ow), ob_)

    def _pool(self, node: Node, ins, in_t) -> str:
        a = node.attrs
        x, blocked = ins[0], in_t[0].rank == 5
        if blocked:
            x = self.unblock(x, in_t[0].shape)
        pads = list(a["pads"])
        common = dict(kernel_shape=list(a["kernel"]), strides=list(a["strides"]), pads=_onnx_pads(pads))
        if node.op == "max_pool2d":
            y = self.op("MaxPool", [x], dilations=list(a.get("dilations", (1, 1))), **common)
        else:
            count = tuple(a.get("count_pads", (0, 0, 0, 0)))
            if tuple(a.get("dilations", (1, 1))) != (1, 1):
                raise NotExportable("dilated average pooling")
            if count == (0, 0, 0, 0):
                y = self.op("AveragePool", [x], count_include_pad=0, **common)
            elif count == tuple(pads):
                y = self.op("AveragePool", [x], count_include_pad=1, **common)
            else:
                raise NotExportable("average pooling that counts only part of its padding (ceil mode)")
        if blocked:
            n, cb, h, w, b = in_t[0].shape
            out = self.types[node.outputs[0]].shape
            y = self.block(y, (n, cb * b, out[2], out[3]), b)
        return y


def _onnx_pads(pads: Sequence[int]) -> list[int]:
    t, l_, b, r = pads
    return [int(t), int(l_), int(b), int(r)]


def export_region(
    body: Sequence[Node],
    inputs: Sequence[str],
    output: str,
    types: Mapping[str, TensorType],
    constants: Mapping[str, np.ndarray],
) -> onnx.ModelProto:
    """ONNX model computing `output` from the run-time `inputs` (named in0, in1, ...; output named out)."""
    ex = _Exporter(types, constants)
    graph_inputs = []
    for i, v in enumerate(inputs):
        name = f"in{i}"
        ex.names[v] = name
        t = types[v]
        graph_inputs.append(helper.make_tensor_value_info(name, _DTYPES[t.dtype], list(t.shape)))
    for node in body:
        if node.op not in ops.REGISTRY:
            raise NotExportable(f"unknown op {node.op}")
        ex.emit(node)
    result = ex.names[output]
    ex.nodes.append(helper.make_node("Identity", [result], ["out"]))
    ex.prune("out")
    t = types[output]
    graph = helper.make_graph(ex.nodes, "region", graph_inputs,
                              [helper.make_tensor_value_info("out", _DTYPES[t.dtype], list(t.shape))], ex.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="woodpecker.planner")
    model.ir_version = 8
    return model
