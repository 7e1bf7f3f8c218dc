"""The kit's runner, on the GPU machine (run.sh calls it after installing the kit's wheels):

    python -m woodpecker.devicekit.run KIT OUT [--parts tests,artifacts,calibration,compile] [--budget-s 450]

Parts, each writing OUT/<part>.json (and OUT/summary.json at the end, whatever failed):
  environment  the Python, TVM (runtime-only or not), PyTorch, onnxruntime providers and the GPU
  tests        pytest on the kit's GPU-marked tests (runtime-only: no compiler on the device)
  artifacts    every artifact loaded, run and checked against onnxruntime's outputs stored in the kit; on a GPU
               timed against PyTorch eager (cuDNN) and onnxruntime's CUDA provider where it has one
  calibration  every candidate of the calibration suite checked and timed as gpu_calibrate.py times it
  compile      torch.compile (Inductor, max-autotune) per model, each in its own process under the time left
GPU parts are skipped, with the reason, where torch or TVM sees no GPU: the CPU part (the host artifact, the
argument handling and the JSON) runs anywhere, which is what the CPU self-test checks.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np

from woodpecker.devicekit import KIT_FORMAT, KIT_VERSION
from woodpecker.measure.correctness import RTOL, relative_error

PARTS = ("tests", "artifacts", "calibration", "compile")
DEFAULT_BUDGET_S = 450.0  # the run must end within 8 minutes of device time, install included


class Run:
    def __init__(self, kit: pathlib.Path, out: pathlib.Path, budget_s: float, repeat: int) -> None:
        self.kit, self.out, self.repeat = kit, out, repeat
        self.deadline = time.monotonic() + budget_s
        self.summary: dict = {"parts": {}}

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def write(self, name: str, data) -> None:
        (self.out / f"{name}.json").write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _torch_cuda():
    """torch when it sees a GPU, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _tvm_gpu() -> bool:
    from woodpecker.runtime.cuda_load import gpu_available

    return gpu_available()


def environment() -> dict:
    import tvm

    env = {"python": platform.python_version(), "machine": platform.machine(), "tvm": tvm.__version__,
           "tvm_runtime_only": bool(tvm.base._RUNTIME_ONLY), "tvm_path": str(pathlib.Path(tvm.__file__).parent)}
    try:
        import onnxruntime as ort

        env["onnxruntime"] = ort.__version__
        env["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        env["onnxruntime"] = None
    torch = _torch_cuda()
    if torch is not None:
        props = torch.cuda.get_device_properties(0)
        env.update(torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   gpu={"name": props.name, "sm_count": props.multi_processor_count,
                        "compute_capability": f"{props.major}.{props.minor}",
                        "memory_gib": round(props.total_memory / 2**30, 1)})
    if _tvm_gpu():
        from woodpecker.runtime.cuda_load import cuda_compiler, device_arch

        env.update(tvm_gpu=True, arch=device_arch(), cuda_compiler=cuda_compiler())
    else:
        env["tvm_gpu"] = False
    return env


def run_tests(run: Run) -> dict:
    """pytest on the kit's tests; their GPU tests skip themselves where there is no GPU."""
    tests = run.kit / "tests"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", str(tests),
           f"--junitxml={run.out / 'tests.xml'}"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, min(120.0, run.left_s())),
                              env={**os.environ, "WOODPECKER_KIT": str(run.kit)}, cwd=str(run.out))
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "pytest timed out", "secs": time.perf_counter() - t0}
    lines = proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines()[-1:]
    # pytest exit 5: nothing collected/selected, which is not a failure of the kit
    return {"ok": proc.returncode in (0, 5), "returncode": proc.returncode, "summary": lines[-1] if lines else "",
            "secs": time.perf_counter() - t0, "output_tail": "\n".join(lines[-30:]) + proc.stderr[-2000:]}


def _load_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _median_s(fn, repeat: int, sync=None) -> dict:
    fn()
    secs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        secs.append(time.perf_counter() - t0)
    return {"median_s": float(np.median(secs)), "min_s": float(np.min(secs)), "repeat": repeat}


def _ort_timing(entry: dict, inputs: dict, provider: str, repeat: int) -> dict:
    import onnxruntime as ort

    from woodpecker.devicekit.artifacts import build_proto

    if provider not in ort.get_available_providers():
        return {"skipped": f"onnxruntime has no {provider}"}
    sess = ort.InferenceSession(build_proto(entry["name"]).SerializeToString(), providers=[provider])
    if sess.get_providers()[0] != provider:
        return {"skipped": f"onnxruntime fell back from {provider} to {sess.get_providers()[0]}"}
    if provider == "CUDAExecutionProvider":
        # bound device buffers: the copies in and out are not the model's time, as for woodpecker's runner
        binding = sess.io_binding()
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        for o in sess.get_outputs():
            binding.bind_output(o.name, "cuda")
        res = _median_s(lambda: sess.run_with_iobinding(binding), repeat, binding.synchronize_outputs)
    else:
        res = _median_s(lambda: sess.run(None, inputs), repeat)
    return res


def check_artifact(run: Run, entry: dict, gpu: bool) -> dict:
    """Load, run and check one artifact; time it and its baselines where its backend can run here."""
    import woodpecker

    folder = run.kit / entry["dir"]
    res: dict = {"name": entry["name"], "target": entry["target"], "backend": entry["backend"]}
    t0 = time.perf_counter()
    model = woodpecker.load(folder / "model.wpk")
    res["load_s"] = time.perf_counter() - t0
    if entry["backend"] == "cuda" and not gpu:
        res["skipped"] = "no GPU visible to TVM and torch"
        return res
    inputs = _load_npz(folder / "inputs.npz")
    expected = _load_npz(folder / "expected.npz")
    t0 = time.perf_counter()
    outputs = model.run(inputs)  # on a GPU: the CUDA source is compiled (NVRTC) here, at the first run
    res["first_run_s"] = time.perf_counter() - t0
    got = list(outputs.values())
    errs = {name: relative_error(np.asarray(got[i]), expected[name]) for i, name in enumerate(entry["outputs"])}
    res["max_rel_err"] = errs
    res["ok"] = all(e <= RTOL for e in errs.values())
    timings: dict = {}
    if entry["backend"] == "cuda":
        runner = model.runner(inputs)  # inputs copied once; each call runs every kernel and syncs the device
        timings["woodpecker"] = _median_s(runner, run.repeat)
        torch = _torch_cuda()
        if torch is None:
            timings["torch_eager_cudnn"] = {"skipped": "torch sees no GPU"}
        else:
            from woodpecker.devicekit.torch_baseline import measure

            try:
                t = measure(entry["name"], "eager", run.repeat, inputs)
                outs = t.pop("outputs", None)
                if outs is not None:
                    t["max_rel_err"] = relative_error(outs[0], expected[entry["outputs"][0]])
                t.pop("run_secs", None)
                timings["torch_eager_cudnn"] = t
            except Exception as err:
                timings["torch_eager_cudnn"] = {"error": _one_line(err)}
        provider = "CUDAExecutionProvider"
    else:
        timings["woodpecker"] = _median_s(lambda: model.run(inputs), run.repeat)
        provider = "CPUExecutionProvider"
    try:
        timings[f"onnxruntime_{provider.removesuffix('ExecutionProvider').lower()}"] = _ort_timing(
            entry, inputs, provider, run.repeat)
    except ImportError:
        timings["onnxruntime"] = {"skipped": "onnxruntime is not installed"}
    except Exception as err:
        timings["onnxruntime"] = {"error": _one_line(err)}
    res["timings"] = timings
    return res


def run_artifacts(run: Run, kit_json: dict) -> list[dict]:
    gpu = _torch_cuda() is not None and _tvm_gpu()
    out = []
    for entry in kit_json["artifacts"]:
        if run.left_s() < 30:
            out.append({"name": entry["name"], "skipped": "time budget spent"})
            continue
        try:
            out.append(check_artifact(run, entry, gpu))
        except Exception as err:  # one artifact's failure is a result, not the end of the run
            out.append({"name": entry["name"], "ok": False, "error": _one_line(err)})
        run.write("artifacts", out)
    return out


def run_calibration(run: Run) -> dict:
    """Each candidate checked against its reference, then timed as gpu_calibrate.py's CudaMeasurer does: a
    discarded warm-up call, 5 repeats of at least 20 ms, median."""
    from woodpecker.devicekit.suite import SUITE_FILE, inputs_digest, regenerate_inputs, sample_error

    folder = run.kit / "calibration"
    suite = json.loads((folder / SUITE_FILE).read_text())
    if not _tvm_gpu():
        return {"skipped": "no GPU visible to TVM", "rows": []}
    import tvm

    from woodpecker import config
    from woodpecker.runtime.cuda_load import cuda_compiler, device_arch, install_callback

    arch, compiler = device_arch(), cuda_compiler()
    binary_dir = config.get().cache_dir / "builds-cuda" / "binaries"
    binary_dir.mkdir(parents=True, exist_ok=True)
    install_callback(str(binary_dir), compiler, arch)
    dev = tvm.cuda(0)
    rows, io_cache = [], {}
    for row in suite["rows"]:
        out = {k: row[k] for k in ("task", "candidate")}
        rows.append(out)
        if "library" not in row:
            out.update(measured_s=None, run_secs=[], error=row.get("error", "not built"))
            continue
        if run.left_s() < 20:
            out.update(measured_s=None, run_secs=[], error="time budget spent")
            continue
        try:
            if row["task"] not in io_cache:
                io = suite["io"][row["task"]]
                inputs = regenerate_inputs(io["input_shapes"])
                if inputs_digest(inputs) != io["inputs_sha256"]:
                    raise RuntimeError("numpy draws other inputs than at build time (digest differs)")
                io_cache[row["task"]] = (inputs, _load_npz(folder / row["io"]), io["output_shape"])
            inputs, ref, out_shape = io_cache[row["task"]]
            t0 = time.perf_counter()
            mod = tvm.runtime.load_module(str(folder / row["library"]))
            f = mod[row["func"]]
            args = [tvm.runtime.tensor(a, dev) for a in inputs]
            result = tvm.runtime.empty(out_shape, "float32", dev)
            f(*args, result)
            dev.sync()
            out["load_and_first_run_s"] = time.perf_counter() - t0
            err = sample_error(result.numpy(), ref)
            if not err <= RTOL:
                out.update(measured_s=None, run_secs=[], error=f"wrong result: max relative error {err:.3g}")
                continue
            timer = mod.time_evaluator(row["func"], dev, number=1, repeat=5, min_repeat_ms=20)
            secs = [float(x) for x in timer(*args, result).results]
            out.update(measured_s=float(np.median(secs)), run_secs=secs, error=None, max_rel_err=err)
        except Exception as err:
            out.update(measured_s=None, run_secs=[], error=_one_line(err))
        run.write("calibration", {"arch": arch, "compiler": compiler, "rows": rows})
    return {"arch": arch, "compiler": compiler, "profile": suite["profile"], "rows": rows}


def run_compile(run: Run, kit_json: dict, mode: str) -> list[dict]:
    """torch.compile of each GPU model, in a child process with the time left split between the models."""
    models = [e["name"] for e in kit_json["artifacts"] if e["backend"] == "cuda"]
    if _torch_cuda() is None:
        return [{"name": m, "skipped": "torch sees no GPU"} for m in models]
    out = []
    for i, name in enumerate(models):
        limit = (run.left_s() - 5) / (len(models) - i)
        if limit < 30:
            out.append({"name": name, "mode": mode, "skipped": "time budget spent"})
            continue
        cmd = [sys.executable, "-m", "woodpecker.devicekit.torch_baseline", name, "--mode", mode,
               "--repeat", str(run.repeat)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
            lines = proc.stdout.strip().splitlines()
            res = json.loads(lines[-1]) if lines else {"error": proc.stderr.strip()[-500:]}
        except subprocess.TimeoutExpired:
            res = {"error": f"torch.compile did not finish within {limit:.0f} s"}
        except json.JSONDecodeError:
            res = {"error": f"no JSON from the child: {proc.stdout[-300:]}"}
        res.pop("run_secs", None)
        out.append({"name": name, "mode": mode, **res})
        run.write("compile", out)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="run.sh", description=__doc__.splitlines()[0])
    ap.add_argument("kit", type=pathlib.Path, help="the kit folder (where run.sh is)")
    ap.add_argument("out", type=pathlib.Path, help="folder for the JSON results (created)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="stop starting work after this")
    ap.add_argument("--repeat", type=int, default=50, help="timed runs per model and baseline")
    ap.add_argument("--compile-mode", default="max-autotune", help="torch.compile mode of the compile part")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part {bad[0]!r}; parts: {', '.join(PARTS)}")
    if args.repeat < 1 or args.budget_s <= 0:
        ap.error("--repeat and --budget-s must be positive")
    kit_file = args.kit / "kit.json"
    if not kit_file.is_file():
        ap.error(f"{args.kit}: not a kit (no kit.json)")
    args.parts = parts
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    kit_json = json.loads((args.kit / "kit.json").read_text())
    if kit_json.get("format") != KIT_FORMAT or kit_json.get("version") != KIT_VERSION:
        print(f"error: {args.kit}/kit.json: not a {KIT_FORMAT} version {KIT_VERSION}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(args.kit, args.out, args.budget_s, args.repeat)
    t0 = time.perf_counter()
    env = environment()
    run.write("environment", env)
    print(f"environment: {json.dumps(env)}", flush=True)
    steps = {"tests": lambda: run_tests(run), "artifacts": lambda: run_artifacts(run, kit_json),
             "calibration": lambda: run_calibration(run),
             "compile": lambda: run_compile(run, kit_json, args.compile_mode)}
    ok = True
    for part in PARTS:
        if part not in args.parts:
            continue
        t = time.perf_counter()
        try:
            result = steps[part]()
            run.write(part, result)
            status = _part_status(part, result)
        except Exception as err:
            status = {"ok": False, "error": _one_line(err)}
        status["secs"] = round(time.perf_counter() - t, 1)
        run.summary["parts"][part] = status
        ok = ok and status["ok"]
        print(f"{part}: {json.dumps(status)}", flush=True)
    run.summary.update(ok=ok, secs=round(time.perf_counter() - t0, 1), kit=kit_json.get("profile"),
                       gpu=env.get("gpu", {}).get("name"))
    run.write("summary", run.summary)
    print(f"wrote {args.out}/summary.json: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def _part_status(part: str, result) -> dict:
    if part == "tests":
        return {"ok": bool(result["ok"]), "summary": result.get("summary", result.get("error", ""))}
    if part == "artifacts":
        bad = [r["name"] for r in result if r.get("ok") is False]
        return {"ok": not bad, "failed": bad, "checked": sum(1 for r in result if "ok" in r)}
    if part == "calibration":
        rows = result.get("rows", [])
        timed = sum(1 for r in rows if r.get("measured_s"))
        return {"ok": True, "timed": timed, "candidates": len(rows), "skipped": result.get("skipped")}
    errors = [r["name"] for r in result if r.get("error")]
    return {"ok": True, "errors": errors}  # a baseline that fails is reported, not a failure of the kit


if __name__ == "__main__":
    sys.exit(main())
