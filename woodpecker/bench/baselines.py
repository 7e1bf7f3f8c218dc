"""Baselines for `woodpecker bench`: other ways to run the same model on the same machine, each a callable.

    onnxruntime        an InferenceSession with all graph optimizations (MLAS kernels), same thread count
    torch              PyTorch eager on the same graph (BatchNorm folded, as torch.jit.freeze would), op by op
                       through torch.nn.functional (oneDNN / MKL kernels); no woodpecker layout or fusion
    tvm-metaschedule   TVM's own ONNX importer and MetaSchedule tuner with the same trial budget as woodpecker,
                       run by the Relax VM
Each baseline's outputs are checked against onnxruntime before it is timed.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

BASELINES = ("onnxruntime", "torch", "tvm-metaschedule")


@dataclasses.dataclass
class Prepared:
    name: str
    run: Callable[[], Any]  # one inference on the prepared inputs
    outputs: Callable[[], list[np.ndarray]]  # run once and return the outputs (for the correctness check)
    setup_s: float  # time to build (compile, tune) the baseline
    note: str = ""


def prepare(name: str, model_bytes: bytes, feed: Mapping[str, np.ndarray], threads: int, trials: int = 64) -> Prepared:
    fn = {"onnxruntime": _onnxruntime, "torch": _torch, "tvm-metaschedule": _metaschedule}.get(name)
    if fn is None:
        from woodpecker.errors import WoodpeckerError

        raise WoodpeckerError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    t0 = time.perf_counter()
    prepared = fn(model_bytes, feed, threads, trials)
    prepared.setup_s = time.perf_counter() - t0
    return prepared


def _onnxruntime(model_bytes, feed, threads, trials) -> Prepared:
    from woodpecker.planner.choices import ort_session

    session = ort_session(model_bytes, threads)
    f = dict(feed)
    return Prepared("onnxruntime", lambda: session.run(None, f), lambda: session.run(None, f), 0.0)


def _torch(model_bytes, feed, threads, trials) -> Prepared:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import onnx
    import torch

    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.ir.ops import ELEMENTWISE_OPS  # noqa: F401
    from woodpecker.passes.pipeline import PassOptions, optimize
    from woodpecker.planner.torch_ops import build_region_fn

    torch.set_num_threads(threads)
    graph = optimize(import_onnx(onnx.load_from_string(model_bytes)),
                     PassOptions(blocked_layout=False, pack_dense=False, fuse=False))
    inputs = list(graph.inputs)
    fns = []
    env_consts = dict(graph.constants)
    types = dict(graph.types)
    for node in graph.nodes:
        ins = [v for v in node.inputs if v not in graph.constants]
        fns.append((build_region_fn((node,), ins, node.outputs[0], types, {k: env_consts[k] for k in node.inputs
                                                                           if k in env_consts}), ins, node.outputs[0]))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(feed[k])) for k in inputs}

    def run():
        with torch.no_grad():
            env = dict(tensors)
            for fn, ins, out in fns:
                env[out] = fn(*[env[v] for v in ins])
            return [env[v] for v in graph.outputs]

    return Prepared("torch", run, lambda: [t.numpy() for t in run()], 0.0, "eager, torch.nn.functional per node")


def _metaschedule(model_bytes, feed, threads, trials) -> Prepared:
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.s_tir import meta_schedule as ms

    from woodpecker.hw.host import llvm_target

    model = onnx.load_from_string(model_bytes)
    shapes = {k: list(v.shape) for k, v in feed.items()}
    mod = from_onnx(model, shape_dict=shapes, keep_params_in_input=False)
    target = llvm_target(threads)
    fuse = tvm.transform.Sequential([*relax.pipeline.library_dispatch_passes(target), relax.transform.LegalizeOps(),
                                     relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
                                     relax.transform.FuseOps(), relax.transform.FuseTIR()])
    with target:
        fused = fuse(mod)
    with tempfile.TemporaryDirectory() as work:
        db = ms.relax_integration.tune_relax(fused, params=None, target=target, work_dir=work, max_trials_global=trials,
                                             num_trials_per_iter=min(64, trials))
        ex = ms.relax_integration.compile_relax(db, mod, target, params=None)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    args = [tvm.runtime.tensor(np.ascontiguousarray(feed[i.name])) for i in model.graph.input if i.name in feed]

    def outputs():
        out = vm["main"](*args)
        outs = out if isinstance(out, (list, tuple)) or hasattr(out, "__len__") and not hasattr(out, "numpy") else [out]
        return [o.numpy() for o in outs]

    return Prepared("tvm-metaschedule", lambda: vm["main"](*args), outputs, 0.0, f"{trials} trials, xgb cost model")
