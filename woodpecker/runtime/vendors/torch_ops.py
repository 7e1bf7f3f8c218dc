"""Region of canonical nodes -> a function over torch tensors (a vendor implementation: PyTorch's CPU kernels,
oneDNN / MKL, or on a CUDA device cuDNN / cuBLAS).

Each canonical op maps onto torch's functional API; blocked-layout tensors are converted with permute/reshape,
as part of the vendor's cost. Ops without an exact torch form raise NotExportable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from woodpecker.ir import ops
from woodpecker.ir.graph import Node, TensorType
from woodpecker.runtime.vendors.export_onnx import NotExportable

_DT = {"float32": "float32", "float64": "float64", "int64": "int64", "int32": "int32", "bool": "bool",
       "int8": "int8", "uint8": "uint8"}


def _unblock(torch, x):
    n, cb, h, w, b = x.shape
    return x.permute(0, 1, 4, 2, 3).reshape(n, cb * b, h, w)


def _block(torch, x, b):
    n, c, h, w = x.shape
    cp = ops.padded_channels(c, b)
    if cp != c:  # a padded block: zero channels fill the last one
        x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, cp - c))
    return x.reshape(n, cp // b, b, h, w).permute(0, 1, 3, 4, 2).contiguous()


def _pad4(F, x, pads, value=0.0):
    t, l_, b, r = pads
    if not any(pads):
        return x
    return F.pad(x, (l_, r, t, b), value=value)


# operators whose weight (input 1) _op_fn repacks from woodpecker's blocked layout into a torch tensor of its own
_REPACKED_WEIGHT_OPS = frozenset({"conv2d_nchwc", "conv2d_winograd_nchwc", "depthwise_conv2d_nchwc", "dense_packed"})


def build_region_fn(body: Sequence[Node], inputs: Sequence[str], output: str,
                    types: Mapping[str, TensorType], constants: Mapping[str, np.ndarray], device: str = "cpu") -> Callable:
    """A function of the region's input tensors (on `device`, a torch device name) returning its output."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    # copies: the model's constants are read-only numpy arrays, and torch wants writable memory
    host_consts = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in constants.items()}
    steps: list[tuple[Callable, list[str], str]] = []

    for node in body:
        a, op = node.attrs, node.op
        out_t = types[node.outputs[0]]
        in_t = [types[v] for v in node.inputs]
        fn = _op_fn(torch, F, op, a, in_t, out_t, node, host_consts, device)
        # a blocked weight is repacked to torch's layout inside _op_fn: the step reads only the activation
        ins = list(node.inputs[:1]) if op in _REPACKED_WEIGHT_OPS else list(node.inputs)
        steps.append((fn, ins, node.outputs[0]))
    read = {v for _, ins, _ in steps for v in ins}
    # uploaded once, not per call; a constant only read repacked is not uploaded a second time as it is
    consts = {k: v.to(device) for k, v in host_consts.items() if k in read}

    def run(*tensors):
        env = dict(consts)
        env.update(zip(inputs, tensors))
        for fn, ins, out in steps:
            env[out] = fn(*[env[v] for v in ins])
        return env[output]

    run.device_constants = consts  # what this function keeps on the device besides its repacked weights
    return run


def _op_fn(torch, F, op, a, in_t, out_t, node, consts, device):  # noqa: C901 - one branch per operator
    unary = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
             "sqrt": torch.sqrt, "reciprocal": torch.reciprocal, "neg": torch.neg, "abs": torch.abs,
             "floor": torch.floor, "ceil": torch.ceil, "erf": torch.erf, "softplus": F.softplus,
             "hard_swish": F.hardswish, "identity": lambda x: x}
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "pow": torch.pow, "maximum": torch.maximum,
              "minimum": torch.minimum, "equal": torch.eq, "less": torch.lt, "greater": torch.gt}
    if op in unary:
        return unary[op]
    if op in binary:
        return binary[op]
    if op == "div":
        return (lambda x, y: torch.div(x, y, rounding_mode="trunc")) if not in_t[0].dtype.startswith("float") else torch.div
    if op == "clip":
        return lambda x: torch.clamp(x, a.get("min"), a.get("max"))
    if op == "leaky_relu":
        return lambda x: F.leaky_relu(x, a.get("alpha", 0.01))
    if op == "elu":
        return lambda x: F.elu(x, a.get("alpha", 1.0))
    if op == "hard_sigmoid":
        return lambda x: torch.clamp(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0.0, 1.0)
    if op == "gelu":
        return lambda x: F.gelu(x, approximate=a.get("approximate", "none"))
    if op == "cast":
        dt = getattr(torch, _DT[a["to"]])
        return lambda x: x.to(dt)
    if op == "where":
        return torch.where
    if op == "reshape":
        return lambda x: x.reshape(tuple(a["shape"]))
    if op == "transpose":
        return lambda x: x.permute(*a["perm"]).contiguous()
    if op == "slice":
        if any(s < 0 for s in a["steps"]):
            raise NotExportable("negative slice steps")
        index = tuple(slice(b, e, s) for b, e, s in zip(a["starts"], a["ends"], a["steps"]))
        return lambda x: x[index].contiguous()
    if op == "concat":
        return lambda *xs: torch.cat(xs, dim=a["axis"])
    if op == "pad":
        r = len(in_t[0].shape)
        pads = a["pads"]
        flat = []
        for d in reversed(range(r)):
            flat += [pads[d], pads[d + r]]
        mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[a.get("mode", "constant")]
        if mode != "constant" and r not in (3, 4, 5):
            raise NotExportable("torch pads reflect/edge only for 3-5 D tensors")
        return lambda x: F.pad(x, flat, mode=mode, value=a.get("value", 0.0)) if mode == "constant" else F.pad(x, flat, mode=mode)
    if op == "gather":
        axis = a["axis"]
        dim = in_t[0].shape[axis]

        def gather(x, idx):
            idx = torch.where(idx < 0, idx + dim, idx).long()
            return torch.index_select(x, axis, idx.reshape(-1)).reshape(out_t.shape)

        return gather
    if op == "expand":
        return lambda x: x.expand(*a["shape"]).contiguous()
    if op == "layout_transform":
        b = a["block"]
        if a["to_blocked"]:
            return lambda x: _block(torch, x, b)
        channels = a.get("channels")
        return lambda x: _unblock(torch, x)[:, :channels].contiguous()
    if op == "conv2d":
        return lambda x, w: F.conv2d(_pad4(F, x, a["pads"]), w, None, tuple(a["strides"]), 0, tuple(a["dilations"]),
                                     a.get("groups", 1))
    if op in ("conv2d_nchwc", "conv2d_winograd_nchwc", "depthwise_conv2d_nchwc"):
        plain, groups, ob = ops.plain_conv_weight(op, consts[node.inputs[1]].numpy(), a)
        wt = torch.from_numpy(np.ascontiguousarray(plain)).to(device)
        return lambda x: _block(torch, F.conv2d(_pad4(F, _unblock(torch, x), a["pads"]), wt, None, tuple(a["strides"]),
                                                    0, tuple(a["dilations"]), groups), ob)
    if op == "dense":
        return lambda x, w: F.linear(x, w)
    if op == "dense_packed":
        w = consts[node.inputs[1]].numpy()
        nb, k, b = w.shape
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 2, 1).reshape(nb * b, k))).to(device)
        return lambda x: F.linear(x, wt)
    if op == "batch_matmul":
        def bmm(x, y):
            if a.get("trans_a"):
                x = x.transpose(1, 2)
            if a.get("trans_b"):
                y = y.transpose(1, 2)
            return torch.matmul(x, y)

        return bmm
    if op in ("max_pool2d", "avg_pool2d"):
        pads = tuple(a["pads"])
        kernel, strides = tuple(a["kernel"]), tuple(a["strides"])
        blocked = len(in_t[0].shape) == 5
        b = in_t[0].shape[-1] if blocked else 1
        if op == "max_pool2d":
            def pool(x):
                x = _unblock(torch, x) if blocked else x
                y = F.max_pool2d(_pad4(F, x, pads, float("-inf")), kernel, strides, 0, tuple(a.get("dilations", (1, 1))))
                return _block(torch, y, b) if blocked else y
        else:
            count = tuple(a.get("count_pads", (0, 0, 0, 0)))
            symmetric = pads[0] == pads[2] and pads[1] == pads[3]
            if not symmetric or count not in ((0, 0, 0, 0), pads) or tuple(a.get("dilations", (1, 1))) != (1, 1):
                raise NotExportable("torch average pooling needs symmetric, fully counted or uncounted padding")

            def pool(x):
                x = _unblock(torch, x) if blocked else x
                y = F.avg_pool2d(x, kernel, strides, (pads[0], pads[1]), count_include_pad=count == pads)
                return _block(torch, y, b) if blocked else y
        return pool
    if op == "global_avg_pool":
        return lambda x: x.mean(dim=(2, 3), keepdim=True)
    if op == "global_max_pool":
        return lambda x: x.amax(dim=(2, 3), keepdim=True)
    if op == "lrn":
        return lambda x: F.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["bias"])
    if op == "softmax":
        return lambda x: torch.softmax(x, dim=1)
    if op == "log_softmax":
        return lambda x: torch.log_softmax(x, dim=1)
    if op == "layer_norm":
        return lambda x, s, b: F.layer_norm(x, (x.shape[-1],), s, b, a["epsilon"])
    if op == "reduce":
        kind = a["kind"]
        return {"sum": lambda x: x.sum(dim=1), "mean": lambda x: x.mean(dim=1), "max": lambda x: x.amax(dim=1),
                "min": lambda x: x.amin(dim=1), "sum_square": lambda x: (x * x).sum(dim=1)}[kind]
    raise NotExportable(f"operator {op} has no torch form")
