"""The calibration suite of benchmarks/gpu_calibrate.py, prebuilt: for every (kernel, candidate) its scheduled
module exported with the CUDA source embedded, its features lowered for the profile's architecture, its ptxas
registers, and the kernel's seeded inputs with the output of the unscheduled algorithm on the CPU.

Inputs are regenerated on the device from their seed (checked by digest) and large outputs are kept as a
fixed sample, to fit the kit's size limit.

The tasks, candidates, references and features come from gpu_calibrate.py itself, so a kit's measurements
refit exactly as that script's own would.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib
import random
import sys

import numpy as np

from woodpecker.errors import WoodpeckerError
from woodpecker.runtime.artifact import write_npz

SUITE_FILE = "suite.json"
FULL_OUTPUT_ELEMENTS = 1 << 18  # larger reference outputs are kept as a fixed sample (the kit's size limit)
SAMPLE_ELEMENTS = 1 << 16


def regenerate_inputs(shapes: list[list[int]], seed: int = 0) -> list[np.ndarray]:
    """The inputs gpu_calibrate.reference draws (seeded), rebuilt on the device instead of shipped: the 1024^3
    SGEMM's alone would be 12 MB. The build checks the two agree; the device checks the digest."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype("float32") for s in shapes]


def inputs_digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def reference_sample(expected: np.ndarray) -> dict[str, np.ndarray]:
    """The whole expected output when small, else SAMPLE_ELEMENTS fixed flat positions (`index`) and their values: a
    wrong kernel differs almost everywhere, and the relative error is still taken against max |expected|."""
    flat = expected.reshape(-1)
    scale = np.array(max(float(np.max(np.abs(flat))) if flat.size else 0.0, 1e-6), np.float64)
    if flat.size <= FULL_OUTPUT_ELEMENTS:
        return {"values": flat, "scale": scale}
    index = np.sort(np.random.default_rng(1).choice(flat.size, SAMPLE_ELEMENTS, replace=False)).astype(np.int32)
    return {"index": index, "values": flat[index], "scale": scale}


def load_gpu_calibrate(root: pathlib.Path):
    """benchmarks/gpu_calibrate.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    path = root / "benchmarks" / "gpu_calibrate.py"
    if "woodpecker_gpu_calibrate" in sys.modules:
        return sys.modules["woodpecker_gpu_calibrate"]
    if not path.exists():
        raise WoodpeckerError(f"{path}: no such file (the kit is built from a woodpecker checkout)")
    spec = importlib.util.spec_from_file_location("woodpecker_gpu_calibrate", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def build_suite(out_dir: pathlib.Path, root: pathlib.Path, profile_id: str, points: int, seed: int = 0,
                tasks: list[str] | None = None) -> dict:
    """out_dir/suite.json plus, per kernel, <task>.npz (in0.., expected) and <task>/<candidate>.so."""
    import tvm

    from woodpecker.hw.profile import load_profile
    from woodpecker.schedule.apply import schedule
    from woodpecker.sim.gpu.lower import cuda_target

    gc = load_gpu_calibrate(root)
    profile = load_profile(profile_id)
    arch = str(profile.target["arch"])
    all_tasks = gc.suite_tasks()
    chosen = tasks or list(all_tasks)
    unknown = [t for t in chosen if t not in all_tasks]
    if unknown:
        raise WoodpeckerError(f"unknown calibration kernel {unknown[0]!r}; available: {', '.join(all_tasks)}")
    rng = random.Random(seed)  # one stream over the suite in its order, as gpu_calibrate.collect draws it
    rows = []
    ios: dict[str, dict] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for label, task in all_tasks.items():
        cands = gc.candidates(task, label, points, profile.target, rng)
        if label not in chosen:
            continue
        inputs, expected = gc.reference(task)
        if inputs_digest(regenerate_inputs([list(a.shape) for a in inputs])) != inputs_digest(inputs):
            raise WoodpeckerError(f"{label}: gpu_calibrate.reference no longer draws inputs as regenerate_inputs")
        (out_dir / f"{label}.npz").write_bytes(write_npz(reference_sample(expected)))
        ios[label] = {"input_shapes": [list(a.shape) for a in inputs], "inputs_sha256": inputs_digest(inputs),
                      "output_shape": list(expected.shape)}
        (out_dir / label).mkdir(exist_ok=True)
        for name, knobs in cands.items():
            row = {"task": label, "family": task.family, "candidate": name, "knobs": knobs, "func": task.name,
                   "io": f"{label}.npz"}
            try:
                ex = tvm.compile(schedule(task, knobs, "gpu"), target=cuda_target(arch))
                lib = f"{label}/{name}.so"
                ex.export_library(str(out_dir / lib))
                feats, regs = gc.features_of(task, knobs, arch)
                row.update(library=lib, features=[f.to_json() for f in feats], registers=regs)
            except Exception as err:  # a candidate that does not build is a row with its reason, as in collect()
                row["error"] = f"build failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            rows.append(row)
    suite = {"profile": profile.id, "profile_hash": profile.content_hash, "arch": arch, "points": points,
             "seed": seed, "io": ios, "rows": rows}
    (out_dir / SUITE_FILE).write_text(json.dumps(suite, indent=1) + "\n")
    return suite


def sample_error(output: np.ndarray, sample: dict[str, np.ndarray]) -> float:
    """max |output - expected| / max |expected| over the positions reference_sample kept."""
    flat = np.asarray(output).reshape(-1)
    got = flat[sample["index"]] if "index" in sample else flat
    if got.shape != sample["values"].shape or not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - sample["values"]))) / float(sample["scale"])
