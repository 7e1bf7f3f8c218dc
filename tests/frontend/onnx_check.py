"""Shared helpers of the frontend tests: build a one-graph ONNX model, compile it with woodpecker, and compare with
onnxruntime on the same seeded inputs.

(A distinctive module name rather than `helpers`: test folders have no __init__.py, so pytest puts each on sys.path
and two `helpers.py` in different folders would shadow each other.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import woodpecker

NP_TO_ONNX = {
    np.dtype("float32"): TensorProto.FLOAT,
    np.dtype("int64"): TensorProto.INT64,
    np.dtype("int32"): TensorProto.INT32,
    np.dtype("bool"): TensorProto.BOOL,
}


def rand(shape: Sequence[int], seed: int = 0, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Seeded float32 data: standard normal, or uniform in [low, high)."""
    rng = np.random.default_rng(seed)
    if low is not None:
        return rng.uniform(low, high, size=tuple(shape)).astype(np.float32)
    return rng.standard_normal(tuple(shape)).astype(np.float32)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, np.ndarray],
    outputs: Sequence[str] | Mapping[str, int] = ("y",),
    initializers: Mapping[str, np.ndarray] | None = None,
    opset: int = 13,
    ir_version: int = 8,
    input_dims: Mapping[str, Sequence[int | str]] | None = None,
) -> onnx.ModelProto:
    """A model whose graph inputs have the shapes and dtypes of the sample arrays in `inputs`.

    `outputs` names the graph outputs (float32), or maps each name to its TensorProto element type. Output shapes
    come from ONNX shape inference (or from onnxruntime, on the sample inputs, where inference cannot tell).
    `input_dims` replaces an input's declared dims (strings are symbolic dims).
    """
    input_dims = dict(input_dims or {})
    seen: dict[str, int] = {}
    for n in nodes:  # node names must be unique; `node()` names each after its op type
        count = seen[n.name] = seen.get(n.name, -1) + 1
        if count:
            n.name = f"{n.name}_{count}"
    graph_inputs = [
        helper.make_tensor_value_info(name, NP_TO_ONNX[a.dtype], list(input_dims.get(name, a.shape)))
        for name, a in inputs.items()
    ]
    if not isinstance(outputs, Mapping):
        outputs = {name: TensorProto.FLOAT for name in outputs}
    graph_outputs = [helper.make_tensor_value_info(name, t, None) for name, t in outputs.items()]
    inits = [numpy_helper.from_array(np.asarray(v), name) for name, v in (initializers or {}).items()]
    graph = helper.make_graph(list(nodes), "test", graph_inputs, graph_outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    # The checker wants output shapes: take them from ONNX's shape inference (woodpecker checks its own shapes
    # against the same inference when it imports the model).
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    for out, inf in zip(model.graph.output, inferred.graph.output):
        out.type.CopyFrom(inf.type)
    if any(not out.type.tensor_type.HasField("shape") for out in model.graph.output):
        # Shapes that ONNX cannot infer statically (a Reshape target computed from Shape): onnxruntime's.
        results = run_onnxruntime(model, inputs)
        for out in model.graph.output:
            if not out.type.tensor_type.HasField("shape"):
                dims = out.type.tensor_type.shape.dim
                for d in results[out.name].shape:
                    dims.add().dim_value = d
    onnx.checker.check_model(model)
    return model


def run_onnxruntime(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the test machine's cores are shared
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(feeds))))


def check(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    rtol: float = 1e-4,
    atol: float = 1e-5,
    scaled_atol: float = 0.0,
    **compile_kwargs,
) -> dict[str, np.ndarray]:
    """Compile with woodpecker, run both, compare every output (values, shape and dtype); returns ours.
    `scaled_atol`: an absolute tolerance of that fraction of the output's largest magnitude, for kernels whose
    rounding grows with the whole output's scale rather than each element's (Winograd convolutions)."""
    expected = run_onnxruntime(model, feeds)
    # our kernels, never the planner's vendor choice: a vendor plan may run onnxruntime itself, which would then
    # be compared with itself whatever WOODPECKER_VENDOR says
    compiled = woodpecker.compile(model, **{"vendor": False, **compile_kwargs})
    got = compiled.run(dict(feeds))
    assert set(got) == set(expected), f"outputs {sorted(got)} != onnxruntime's {sorted(expected)}"
    for name, want in expected.items():
        have = got[name]
        assert have.shape == want.shape, f"output {name}: shape {have.shape} != onnxruntime's {want.shape}"
        assert have.dtype == want.dtype, f"output {name}: dtype {have.dtype} != onnxruntime's {want.dtype}"
        if want.dtype == np.bool_ or want.dtype.kind in "iu":
            np.testing.assert_array_equal(have, want, err_msg=f"output {name}")
        else:
            scale = float(np.max(np.abs(want), initial=0.0))
            np.testing.assert_allclose(have, want, rtol=rtol, atol=max(atol, scaled_atol * scale), err_msg=f"output {name}")
    return got


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str] = ("y",), **attrs) -> onnx.NodeProto:
    return helper.make_node(op_type, list(inputs), list(outputs), name=f"{op_type.lower()}_0", **attrs)
