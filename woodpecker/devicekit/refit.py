"""Fit the GPU model to a kit run: the device's timings (RESULTS/calibration.json) joined with the features and
registers the kit computed at build time (KIT/calibration/suite.json), fitted by gpu_calibrate.fit, written as
gpu_calibrate.py writes its own runs (benchmarks/results/gpu_calibration/<device>.json), so that
`gpu_calibrate.py --refit FILE` redoes the same fit later.
"""

from __future__ import annotations

import json
import pathlib
import re

from woodpecker.devicekit.suite import SUITE_FILE, load_gpu_calibrate
from woodpecker.errors import WoodpeckerError


def _read(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise WoodpeckerError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise WoodpeckerError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None


def calibration_data(results: pathlib.Path, kit: pathlib.Path) -> dict:
    """The rows of gpu_calibrate.collect(), from a kit run."""
    suite = _read(kit / "calibration" / SUITE_FILE)
    measured = _read(results / "calibration.json")
    env = _read(results / "environment.json")
    if not measured.get("rows"):
        raise WoodpeckerError(f"{results}/calibration.json has no timed rows ({measured.get('skipped', 'empty')})")
    gpu = env.get("gpu") or {}
    built = {(r["task"], r["candidate"]): r for r in suite["rows"]}
    rows = []
    for m in measured["rows"]:
        b = built.get((m["task"], m["candidate"]))
        if b is None:
            raise WoodpeckerError(f"{results}/calibration.json: {m['task']}/{m['candidate']} is not in {kit}'s suite")
        row = {"task": m["task"], "family": b["family"], "candidate": m["candidate"], "knobs": b["knobs"],
               "measured_s": m.get("measured_s"), "run_secs": m.get("run_secs", []), "error": m.get("error")}
        if m.get("measured_s") and b.get("features"):
            row.update(features=b["features"], registers=b.get("registers") or {})
        rows.append(row)
    if suite["arch"] != measured.get("arch"):
        # the features were lowered for the profile's arch; a different device makes the fit approximate
        print(f"note: features were lowered for {suite['arch']}, the device is {measured.get('arch')}")
    return {"device": {"name": gpu.get("name", "unknown"), "sm_count": gpu.get("sm_count"),
                       "compute_capability": gpu.get("compute_capability")},
            "arch": measured.get("arch"), "profile": suite["profile"], "profile_hash": suite["profile_hash"],
            "toolchain": {"compiler": measured.get("compiler"), "torch": env.get("torch"), "cuda": env.get("cuda"),
                          "source": "woodpecker.devicekit"},
            "rows": rows}


def refit(results: pathlib.Path, kit: pathlib.Path, out_dir: pathlib.Path, root: pathlib.Path) -> pathlib.Path:
    """Fit (printing Kendall tau before and after) and write out_dir/<device>.json; returns its path."""
    gc = load_gpu_calibrate(root)
    data = calibration_data(results, kit)
    data["fit"] = gc.fit(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", str(data["device"]["name"]).lower()).strip("-") or "unknown"
    path = out_dir / f"{slug}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")
    return path
