"""GPU model calibration: kernels timed on the attached GPU -> fitted efficiency factors of the GPU model.

It also prints the model's rank agreement before and after the fit and keeps the measured data in the
repository.

    python benchmarks/gpu_calibrate.py [--profile a100] [--points 3] [--out DIR]
    python benchmarks/gpu_calibrate.py --refit benchmarks/results/gpu_calibration/<device>.json

Suite: the three 1024^3 SGEMM variants of shared/notes/simulation.md (naive, 16x16 shared-memory tiles, 64x64
register tiles), and kernels of every GPU family at ResNet-50 / MobileNetV2 / BERT-base shapes (3x3, 1x1,
7x7/2 and depthwise convolutions, dense layers at batch 1 and 128, attention batch_matmul, max pooling, global
pooling, softmax, layer norm), each with its default schedule and `--points` random valid points of its search
space (seed 0) under the profile's limits.

Method: every candidate is measured with CudaMeasurer (output checked against the CPU-compiled algorithm
first, then `time_evaluator`: a discarded warm-up call, 5 repeats of at least 20 ms, median). Its features
come from the same schedule lowered for the device's architecture, its registers from ptxas (nvcc -Xptxas -v).
The model uses the profile, with the SM count of the attached device. Efficiency factors are fitted by least
squares on log time (woodpecker/sim/gpu/fit.py); Kendall's tau between model and measurement is printed before
and after the fit. The rows (knobs, measured seconds, features, registers) go to DIR/<device>.json (default
benchmarks/results/gpu_calibration) so the fit can be redone without a GPU (--refit, which also rewrites the
file's fit). Without an NVIDIA GPU the script stops with a one-line error.

On a GPU machine without TVM's compiler, the device kit (python -m woodpecker.devicekit build/refit, see the
README) prebuilds this suite here from the functions below and times it there; its refit writes the same file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import random
import re
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu_calibration"
WINDOW = dict(DH=1, DW=1)


# label: (template, bindings), or ("conv", (C, HW, K, RS, stride, pad[, groups])) for a square NCHW convolution
SUITE = {
    "sgemm_1024": ("batch_matmul", dict(BT=1, BA=1, BB=1, M=1024, K=1024, N=1024)),
    "r50_3x3_64": ("conv", (64, 56, 64, 3, 1, 1)),
    "r50_1x1_256": ("conv", (256, 56, 64, 1, 1, 0)),
    "r50_3x3_256_s1": ("conv", (256, 14, 256, 3, 1, 1)),
    "r50_7x7_s2": ("conv", (3, 224, 64, 7, 2, 3)),
    "mbv2_dw_3x3": ("conv", (144, 56, 144, 3, 1, 1, 144)),
    "dense_b1": ("dense", dict(M=1, K=2048, N=1000)),
    "bert_dense": ("dense", dict(M=128, K=768, N=3072)),
    "bert_attn_qk": ("batch_matmul_nt", dict(BT=12, BA=12, BB=12, M=128, K=64, N=128)),
    "maxpool_3x3_s2": (
        "max_pool2d",
        dict(N=1, C=64, H=112, W=112, B=1, R=3, S=3, SH=2, SW=2, PT=1, PL=1, PB=1, PR=1, **WINDOW),
    ),
    "global_avg_pool": ("global_avg_pool", dict(N=1, C=2048, H=7, W=7, B=1)),
    "softmax_1000": ("softmax", dict(O=128, D=1000, I=1)),
    "layer_norm_768": ("layer_norm", dict(O=128, D=768, EPS=1e-5)),
}

SGEMM = {  # the variants of shared/notes/simulation.md section 3
    "naive": dict(
        thread_m=16,
        thread_n=16,
        inner_m=1,
        inner_n=1,
        vthread_m=1,
        vthread_n=1,
        stage=0,
        split_k=1024,
        vector=1,
        pad_smem=0,
        unroll=0,
    ),
    "smem_16x16": dict(
        thread_m=16,
        thread_n=16,
        inner_m=1,
        inner_n=1,
        vthread_m=1,
        vthread_n=1,
        stage=1,
        split_k=16,
        vector=1,
        pad_smem=0,
        unroll=0,
    ),
    "reg_64x64": dict(
        thread_m=16,
        thread_n=16,
        inner_m=4,
        inner_n=4,
        vthread_m=1,
        vthread_n=1,
        stage=1,
        split_k=8,
        vector=1,
        pad_smem=0,
        unroll=512,
    ),
}

PROFILE_BY_NAME = (("H100", "h100"), ("A100", "a100"), ("V100", "v100"), ("T4", "t4"), ("P100", "p100"))


def suite_tasks():
    from woodpecker.testing.kernels import conv2d_task, make_task

    return {label: conv2d_task(1, *spec, name=label) if template == "conv" else make_task(template, spec, name=label)
            for label, (template, spec) in SUITE.items()}


def reference(task, seed: int = 0):
    """Random inputs and the output of the unscheduled algorithm compiled for the CPU."""
    import tvm

    from woodpecker.schedule.apply import prim_func

    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(s).astype("float32") for s in task.param_shapes[:-1]]
    ex = tvm.compile(
        tvm.IRModule({task.name: prim_func(task).with_attr("global_symbol", task.name)}), target="llvm"
    )
    out = tvm.runtime.empty(task.param_shapes[-1], "float32", tvm.cpu(0))
    ex[task.name](*[tvm.runtime.tensor(a) for a in inputs], out)
    return inputs, out.numpy()


def candidates(task, label: str, points: int, limits, rng: random.Random):
    from woodpecker.space.space import space_for_task

    space = space_for_task(task, "gpu", limits=limits)
    out = {"default": dict(space.default)}
    if label == "sgemm_1024":
        out.update({name: space.point(k) for name, k in SGEMM.items()})
    for i in range(points):
        p = space.random_point(rng)
        if p is not None:
            out[f"random{i}"] = p
    return out


def features_of(task, knobs, arch: str):
    import tvm

    from woodpecker.schedule.apply import schedule
    from woodpecker.sim.gpu.features import extract_module
    from woodpecker.sim.gpu.lower import cuda_target, lower_device
    from woodpecker.sim.gpu.nvcc import compile_source

    mod = schedule(task, knobs, "gpu")
    feats = extract_module(lower_device(mod, arch))
    source = tvm.compile(mod, target=cuda_target(arch)).mod.imports[0].inspect_source()
    nv = compile_source(source, arch)
    return feats, (dict(nv.registers) if nv.ok else {})


def profile_for(device_name: str, requested: str | None):
    from woodpecker.hw.profile import load_profile

    if requested:
        return load_profile(requested)
    for key, pid in PROFILE_BY_NAME:
        if key in device_name.upper():
            return load_profile(pid)
    raise SystemExit(f"error: no GPU profile matches {device_name!r}; pass --profile")


def collect(args) -> dict:
    from woodpecker.errors import TargetError
    from woodpecker.measure.cuda import CudaMeasurer
    from woodpecker.measure.measurer import MeasureOptions

    try:
        measurer = CudaMeasurer(
            build_workers=args.workers, options=MeasureOptions(repeat=5, min_repeat_ms=20)
        )
    except TargetError as err:
        raise SystemExit(f"error: {err}") from None
    rows = []
    with measurer as m:
        profile = profile_for(m.device["name"], args.profile)
        arch = m.target["arch"]
        print(
            f"device: {m.device['name']} ({arch}, {m.device['sm_count']} SMs); profile {profile.id}",
            flush=True,
        )
        rng = random.Random(args.seed)
        for label, task in suite_tasks().items():
            t0 = time.perf_counter()
            inputs, expected = reference(task)
            m.set_reference(task, inputs, expected)
            cands = candidates(task, label, args.points, profile.target, rng)
            results = m.measure(task, list(cands.values()))
            for (name, knobs), res in zip(cands.items(), results):
                row = {
                    "task": label,
                    "family": task.family,
                    "candidate": name,
                    "knobs": knobs,
                    "measured_s": res.cost if res.ok else None,
                    "run_secs": list(res.run_secs),
                    "error": res.error,
                }
                if res.ok:
                    feats, regs = features_of(task, knobs, arch)
                    row.update(features=[f.to_json() for f in feats], registers=regs)
                rows.append(row)
                shown = f"{res.cost * 1e6:10.1f} us" if res.ok else f"failed: {res.error}"
                print(f"  {label:16s} {name:10s} {shown}", flush=True)
            print(f"{label}: {len(cands)} candidates in {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "device": m.device,
        "arch": arch,
        "profile": profile.id,
        "profile_hash": profile.content_hash,
        "toolchain": {"compiler": m.compiler},
        "rows": rows,
    }


def fit(data: dict) -> dict:
    from woodpecker.hw.profile import load_profile
    from woodpecker.sim.gpu.features import KernelFeatures
    from woodpecker.sim.gpu.fit import Sample, fit_efficiency, predict
    from woodpecker.sim.gpu.model import Efficiency, GpuDevice

    profile = load_profile(data["profile"])
    device = GpuDevice.from_profile(profile)
    if data.get("device", {}).get("sm_count"):
        device = dataclasses.replace(device, sm_count=int(data["device"]["sm_count"]))
    ok = [r for r in data["rows"] if r.get("measured_s") and r.get("features")]
    samples = [
        Sample(
            tuple(KernelFeatures.from_json(f) for f in r["features"]),
            r.get("registers") or None,
            float(r["measured_s"]),
        )
        for r in ok
    ]
    result = fit_efficiency(samples, device)
    before = predict(samples, device, Efficiency())
    after = predict(samples, device, result.efficiency)
    print(f"\n{'kernel':16s} {'candidate':10s} {'measured us':>12s} {'model us':>10s} {'fitted us':>10s}")
    for r, b, a in zip(ok, before, after):
        print(
            f"{r['task']:16s} {r['candidate']:10s} {r['measured_s'] * 1e6:12.1f} {b * 1e6:10.1f} "
            f"{a * 1e6:10.1f}"
        )
    print(
        f"\n{len(samples)} kernels; Kendall tau model vs measured: {result.kendall_tau_before:.3f} before "
        f"the fit, "
        f"{result.kendall_tau_after:.3f} after; rms log error {result.rms_log_error_before:.3f} -> "
        f"{result.rms_log_error_after:.3f}"
    )
    print("fitted efficiency:", json.dumps({k: round(v, 4) for k, v in result.efficiency.to_json().items()}))
    return {
        "efficiency": result.efficiency.to_json(),
        "kendall_tau_before": result.kendall_tau_before,
        "kendall_tau_after": result.kendall_tau_after,
        "rms_log_error_before": result.rms_log_error_before,
        "rms_log_error_after": result.rms_log_error_after,
        "kernels": len(samples),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="GPU profile to calibrate (default: matched from the device name)")
    ap.add_argument("--points", type=int, default=3, help="random schedules per kernel besides the default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="build processes (default: one per core)")
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--refit", type=pathlib.Path, help="fit the data of an earlier run instead of measuring")
    args = ap.parse_args(argv)
    if args.refit:
        data = json.loads(args.refit.read_text())
        data["fit"] = fit(data)
        args.refit.write_text(json.dumps(data, indent=1) + "\n")
        return 0
    data = collect(args)
    data["fit"] = fit(data)
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", data["device"]["name"].lower()).strip("-")
    path = args.out / f"{slug}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
