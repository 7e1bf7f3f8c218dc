"""Baselines for `woodpecker bench`: other ways to run the same model on the same machine, each a callable.

    onnxruntime        an InferenceSession with all graph optimizations (MLAS kernels), same thread count
    torch              PyTorch eager on the same graph (BatchNorm folded, as torch.jit.freeze would), op by op
                       through torch.nn.functional (oneDNN / MKL kernels); no woodpecker layout or fusion
    tvm-metaschedule   TVM's own ONNX importer and MetaSchedule tuner with the same trial budget as woodpecker,
                       run by the Relax VM
    cudnn              the torch baseline on the attached NVIDIA GPU: cuDNN convolutions (cudnn.benchmark on, so
                       cuDNN picks its fastest algorithm per shape), cuBLAS GEMMs, float32 without TF32 (as
                       woodpecker computes); every run waits for the device
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

BASELINES = ("onnxruntime", "torch", "tvm-metaschedule", "cudnn")


@dataclasses.dataclass
class Prepared:
    name: str
    run: Callable[[], Any]  # one inference on the prepared inputs
    outputs: Callable[[], list[np.ndarray]]  # run once and return the outputs (for the correctness check)
    setup_s: float  # time to build (compile, tune) the baseline
    note: str = ""


def prepare(name: str, model_bytes: bytes, feed: Mapping[str, np.ndarray], threads: int, trials: int = 64,
            build_dir: str | None = None) -> Prepared:
    """Build a baseline. `build_dir`, when given, is kept between the processes that time the same baseline: one
    that builds for long (MetaSchedule tunes) stores its build there and the later processes load it."""
    fn = {"onnxruntime": _onnxruntime, "torch": _torch, "tvm-metaschedule": _metaschedule, "cudnn": _cudnn}.get(name)
    if fn is None:
        from woodpecker.errors import WoodpeckerError

        raise WoodpeckerError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    t0 = time.perf_counter()
    prepared = fn(model_bytes, feed, threads, trials, build_dir)
    prepared.setup_s = time.perf_counter() - t0
    return prepared


def _onnxruntime(model_bytes, feed, threads, trials, build_dir=None) -> Prepared:
    from woodpecker.runtime.vendors import ort_session

    session = ort_session(model_bytes, threads)
    f = dict(feed)
    return Prepared("onnxruntime", lambda: session.run(None, f), lambda: session.run(None, f), 0.0)


def _cudnn(model_bytes, feed, threads, trials, build_dir=None) -> Prepared:
    import torch

    from woodpecker.errors import TargetError

    if not torch.cuda.is_available():
        raise TargetError("the cudnn baseline needs an NVIDIA GPU and a CUDA build of PyTorch; torch sees no GPU here")
    from woodpecker.runtime.vendors import cuda_fp32_settings

    cuda_fp32_settings(torch)
    prepared = _torch(model_bytes, feed, threads, trials, device="cuda")
    prepared.name = "cudnn"
    prepared.note = f"torch {torch.__version__} eager on {torch.cuda.get_device_name()}, cudnn.benchmark, no TF32"
    return prepared


def _torch(model_bytes, feed, threads, trials, build_dir=None, device: str = "cpu") -> Prepared:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import onnx
    import torch

    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.ir.ops import ELEMENTWISE_OPS  # noqa: F401
    from woodpecker.passes.pipeline import PassOptions, optimize
    from woodpecker.runtime.vendors.torch_ops import build_region_fn

    torch.set_num_threads(threads)
    graph = optimize(import_onnx(onnx.load_from_string(model_bytes)),
                     PassOptions(blocked_layout=False, pack_dense=False, fuse=False))
    inputs = list(graph.inputs)
    fns = []
    env_consts = dict(graph.constants)
    types = dict(graph.types)
    for node in graph.nodes:
        ins = [v for v in node.inputs if v not in graph.constants]
        fns.append((build_region_fn((node,), ins, node.outputs[0], types,
                                    {k: env_consts[k] for k in node.inputs if k in env_consts}, device=device),
                    ins, node.outputs[0]))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(feed[k])).to(device) for k in inputs}
    wait = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run():
        with torch.no_grad():
            env = dict(tensors)
            for fn, ins, out in fns:
                env[out] = fn(*[env[v] for v in ins])
            wait()  # a run is done when the device is
            return [env[v] for v in graph.outputs]

    return Prepared("torch", run, lambda: [t.cpu().numpy() for t in run()], 0.0, "eager, torch.nn.functional per node")


def _build_float(mod, target, _params):
    """MetaSchedule's default build function without its `import tvm.s_tir.tensor_intrin`.

    Why: that import takes 30-60 s on a 2-core machine (TVMScript parses hundreds of tensor intrinsics, calling
    inspect.stack for each) and happens inside the timed build of every fresh builder worker; with the default
    30 s timeout every build timed out, the pool restarted, and tuning never measured a candidate. The builder
    pool is recreated for every batch, so even with a longer timeout each batch would pay it. The intrinsics only
    name tensorized instructions (int8 dot products, GPU tensor cores) that float32 CPU schedules never use."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def metaschedule_builder(threads: int):
    """MetaSchedule's LocalBuilder for float32 CPU tuning (see _build_float)."""
    from tvm.s_tir import meta_schedule as ms

    return ms.builder.LocalBuilder(max_workers=threads, f_build=_build_float)


def metaschedule_trials_per_iter(trials: int, tasks: int) -> int:
    """Candidates per MetaSchedule iteration: its task scheduler gives every task one iteration before it
    follows gradients, so a budget smaller than 64 x tasks must be spread (as woodpecker's tuner spreads its
    own), or only the first tasks would ever be measured and the rest would run untuned."""
    return max(1, min(64, trials // max(1, tasks)))


def _metaschedule(model_bytes, feed, threads, trials, build_dir=None) -> Prepared:
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
    tasks = ms.relax_integration.extract_tasks(fused, target, params=None)
    per_iter = metaschedule_trials_per_iter(trials, len(tasks))
    built = os.path.join(build_dir, f"metaschedule-{trials}.so") if build_dir else None
    if built and os.path.exists(built):  # tuned by an earlier timing process of this run
        ex = tvm.runtime.load_module(built)
    else:
        with tempfile.TemporaryDirectory() as work:
            db = ms.relax_integration.tune_relax(fused, params=None, target=target, work_dir=work,
                                                 max_trials_global=trials, num_trials_per_iter=per_iter,
                                                 builder=metaschedule_builder(threads))
            ex = ms.relax_integration.compile_relax(db, mod, target, params=None)
        if built:
            ex.export_library(built)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    args = [tvm.runtime.tensor(np.ascontiguousarray(feed[i.name])) for i in model.graph.input if i.name in feed]

    def outputs():
        out = vm["main"](*args)
        outs = out if isinstance(out, (list, tuple)) or hasattr(out, "__len__") and not hasattr(out, "numpy") else [out]
        return [o.numpy() for o in outs]

    return Prepared("tvm-metaschedule", lambda: vm["main"](*args), outputs, 0.0,
                    f"{trials} trials over {len(tasks)} tasks ({per_iter} per iteration), xgb cost model")
