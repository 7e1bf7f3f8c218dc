"""PyTorch baselines of a kit model on the GPU: eager (cuDNN, cudnn.benchmark) and torch.compile (Inductor).

The device has no ONNX-to-PyTorch converter, so the zoo's ONNX graph is replayed with torch.nn.functional for
the operators the zoo uses; any other operator is reported as unsupported (the baseline is skipped, not faked).
torch.compile runs in its own process (`python -m woodpecker.devicekit.torch_baseline`) under a deadline:
max-autotune can take minutes, and a slow or hung compile must not cost the rest of the run.

    python -m woodpecker.devicekit.torch_baseline MODEL --mode max-autotune --repeat 50   # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from onnx import numpy_helper

SUPPORTED = ("Conv", "BatchNormalization", "Relu", "Clip", "Add", "MaxPool", "GlobalAveragePool", "Flatten",
             "Gemm", "Concat", "MatMul", "Softmax", "Reshape", "Transpose", "Mul", "AveragePool", "Dropout")


class Unsupported(Exception):
    pass


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(a, rank=2):
    pads = list(a.get("pads", [0] * 2 * rank))
    if pads[:rank] != pads[rank:]:
        raise Unsupported("asymmetric padding")
    return pads[:rank]


def graph_fn(proto, device):
    """(fn, input names): fn(*tensors) -> list of outputs, the ONNX graph replayed in torch on `device`."""
    import torch
    import torch.nn.functional as F

    consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()).to(device) for i in proto.graph.initializer}
    nodes = list(proto.graph.node)
    for n in nodes:
        if n.op_type not in SUPPORTED:
            raise Unsupported(f"operator {n.op_type}")
    inputs = [i.name for i in proto.graph.input if i.name not in consts]
    outputs = [o.name for o in proto.graph.output]
    attrs = [_attrs(n) for n in nodes]

    def fn(*xs):
        env = dict(consts)
        env.update(zip(inputs, xs))
        for n, a in zip(nodes, attrs):
            x = [env[i] if i else None for i in n.input]
            op = n.op_type
            if op == "Dropout":  # inference: identity
                y = x[0]
            elif op == "Conv":
                y = F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, a.get("strides", [1, 1]), _pads(a),
                             a.get("dilations", [1, 1]), a.get("group", 1))
            elif op == "BatchNormalization":
                y = F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, a.get("epsilon", 1e-5))
            elif op == "Relu":
                y = F.relu(x[0])
            elif op == "Clip":
                lo = x[1].item() if len(x) > 1 and x[1] is not None else a.get("min")
                hi = x[2].item() if len(x) > 2 and x[2] is not None else a.get("max")
                y = torch.clamp(x[0], lo, hi)
            elif op in ("Add", "Mul"):
                y = x[0] + x[1] if op == "Add" else x[0] * x[1]
            elif op in ("MaxPool", "AveragePool"):
                pool = F.max_pool2d if op == "MaxPool" else F.avg_pool2d
                y = pool(x[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]), _pads(a),
                         ceil_mode=bool(a.get("ceil_mode", 0)))
            elif op == "GlobalAveragePool":
                y = torch.mean(x[0], dim=(2, 3), keepdim=True)
            elif op == "Flatten":
                y = torch.flatten(x[0], a.get("axis", 1))
            elif op == "Gemm":
                w = x[1].t() if a.get("transB", 0) else x[1]
                xa = x[0].t() if a.get("transA", 0) else x[0]
                y = a.get("alpha", 1.0) * (xa @ w)
                if len(x) > 2 and x[2] is not None:
                    y = y + a.get("beta", 1.0) * x[2]
            elif op == "Concat":
                y = torch.cat(x, dim=a["axis"])
            elif op == "MatMul":
                y = x[0] @ x[1]
            elif op == "Softmax":
                y = torch.softmax(x[0], dim=a.get("axis", -1))
            elif op == "Reshape":
                y = torch.reshape(x[0], [int(v) for v in x[1].tolist()])
            else:  # Transpose
                y = x[0].permute(*a["perm"])
            env[n.output[0]] = y
        return [env[o] for o in outputs]

    return fn, inputs


def time_cuda(fn, repeat: int, warmup: int = 3) -> list[float]:
    """Seconds per call, each call timed alone with the device synchronized before and after."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def measure(name: str, mode: str, repeat: int, inputs: dict[str, np.ndarray] | None = None) -> dict:
    """{"median_s", "run_secs", "outputs"?} of the model in torch on cuda:0 (mode "eager" or a torch.compile
    mode such as "max-autotune"), or {"error": ...}."""
    import torch

    from woodpecker.devicekit.artifacts import build_proto, seeded_inputs

    proto = build_proto(name)
    try:
        fn, names = graph_fn(proto, "cuda")
    except Unsupported as err:
        return {"error": f"unsupported: {err}"}
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest convolution algorithm per shape
    feeds = inputs if inputs is not None else seeded_inputs(proto)
    xs = [torch.from_numpy(feeds[n]).cuda() for n in names]
    t0 = time.perf_counter()
    run = fn if mode == "eager" else torch.compile(fn, mode=mode)
    with torch.inference_mode():
        first = run(*xs)
        torch.cuda.synchronize()
        setup_s = time.perf_counter() - t0
        secs = time_cuda(lambda: run(*xs), repeat)
    return {"median_s": float(np.median(secs)), "run_secs": secs, "setup_s": setup_s,
            "outputs": [o.float().cpu().numpy() for o in first]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--mode", default="max-autotune")
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args(argv)
    try:
        res = measure(args.model, args.mode, args.repeat)
    except Exception as err:  # one line for the report: the parent records it as this baseline's error
        res = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    res.pop("outputs", None)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
