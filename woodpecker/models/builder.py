"""OnnxBuilder: a small helper for writing ONNX graphs in code with seeded random weights."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what the pinned onnxruntime reads


class OnnxBuilder:
    def __init__(self, name: str, seed: int = 0, opset: int = OPSET) -> None:
        self.name = name
        self.opset = opset  # a later opset only where a model needs a newer operator (Gelu is opset 20)
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._n = 0

    def uid(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def input(self, name: str, shape: list[int], dtype=TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        return name

    def const(self, value: np.ndarray, base: str = "w") -> str:
        name = self.uid(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, shape: tuple[int, ...], fan_in: int, base: str = "w") -> str:
        std = math.sqrt(2.0 / max(fan_in, 1))  # He initialization keeps activations in range through depth
        return self.const(self.rng.normal(0.0, std, shape).astype(np.float32), base)

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs) -> str | list[str]:
        name = self.uid(op_type.lower())
        outs = [f"{name}_out{i}" if n_out > 1 else f"{name}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs if n_out > 1 else outs[0]

    # -- layers ------------------------------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int | None = None, groups: int = 1,
             bias: bool = False) -> str:
        pad = k // 2 if pad is None else pad
        w = self.weight((cout, cin // groups, k, k), cin // groups * k * k)
        inputs = [x, w] + ([self.const(self.rng.normal(0, 0.05, cout).astype(np.float32), "b")] if bias else [])
        return self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=groups)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        gamma = self.const(r.uniform(0.5, 1.5, c).astype(np.float32), "gamma")
        beta = self.const(r.normal(0, 0.1, c).astype(np.float32), "beta")
        mean = self.const(r.normal(0, 0.1, c).astype(np.float32), "mean")
        var = self.const(r.uniform(0.5, 1.5, c).astype(np.float32), "var")
        return self.op("BatchNormalization", [x, gamma, beta, mean, var], epsilon=1e-5)

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def relu6(self, x: str) -> str:
        lo = self.const(np.array(0.0, np.float32), "zero")
        hi = self.const(np.array(6.0, np.float32), "six")
        return self.op("Clip", [x, lo, hi])

    def linear(self, x: str, cin: int, cout: int) -> str:
        """Gemm with transB (the PyTorch nn.Linear export)."""
        w = self.weight((cout, cin), cin)
        b = self.const(self.rng.normal(0, 0.05, cout).astype(np.float32), "b")
        return self.op("Gemm", [x, w, b], transB=1)

    def matmul_linear(self, x: str, cin: int, cout: int) -> str:
        """MatMul + Add, the way torch exports nn.Linear applied to a 3-D tensor."""
        w = self.const(self.rng.normal(0, 1 / math.sqrt(cin), (cin, cout)).astype(np.float32), "w")
        bias = self.const(self.rng.normal(0, 0.02, cout).astype(np.float32), "b")
        return self.op("Add", [self.op("MatMul", [x, w]), bias])

    def layer_norm(self, x: str, d: int, epsilon: float) -> str:
        """LayerNormalization over the last axis, with random scale and bias."""
        scale = self.const(self.rng.uniform(0.8, 1.2, d).astype(np.float32), "ln_g")
        bias = self.const(self.rng.normal(0, 0.02, d).astype(np.float32), "ln_b")
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=epsilon)

    def model(self, output: str, out_shape: list[int] | None = None) -> onnx.ModelProto:
        self.outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)]
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="woodpecker.models")
        model.ir_version = max(IR_VERSION, helper.find_min_ir_version_for(opsets))
        onnx.checker.check_model(model)
        return model
