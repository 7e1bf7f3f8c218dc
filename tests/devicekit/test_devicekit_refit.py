"""The refit here: a kit run's timings joined with the kit's features give gpu_calibrate's data, and the file
written refits to the same numbers with `gpu_calibrate.py --refit` (the fit is reproducible from stored rows)."""

from __future__ import annotations

import json

import pytest

from woodpecker.devicekit.build import ROOT
from woodpecker.devicekit.refit import calibration_data, refit
from woodpecker.devicekit.suite import load_gpu_calibrate
from woodpecker.errors import WoodpeckerError


def _fake_run(kit, folder):
    """What run.sh would write on an H100: stand-in timings (2x the model's prediction, one failed row)."""
    suite = json.loads((kit / "calibration" / "suite.json").read_text())
    folder.mkdir()
    rows = []
    for i, r in enumerate(suite["rows"]):
        if i == 1:
            rows.append({"task": r["task"], "candidate": r["candidate"], "measured_s": None, "run_secs": [],
                         "error": "wrong result: max relative error 0.5"})
        else:
            t = 1e-5 * (1 + i) * (1.5 if r["task"] == "layer_norm_768" else 1.0)
            rows.append({"task": r["task"], "candidate": r["candidate"], "measured_s": t, "run_secs": [t] * 5,
                         "error": None})
    (folder / "calibration.json").write_text(json.dumps({"arch": "sm_90", "compiler": "nvrtc", "rows": rows}))
    (folder / "environment.json").write_text(json.dumps(
        {"gpu": {"name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "compute_capability": "9.0"},
         "torch": "2.9.0", "cuda": "13.0"}))
    return rows


def test_refit_writes_gpu_calibrate_data_that_refits_identically(small_kit, tmp_path, capsys):
    kit, _ = small_kit
    rows = _fake_run(kit, tmp_path / "res")
    path = refit(tmp_path / "res", kit, tmp_path / "cal", ROOT)
    assert path.name == "nvidia-h100-80gb-hbm3.json"
    printed = capsys.readouterr().out
    assert "Kendall tau model vs measured" in printed and "before" in printed and "after" in printed
    data = json.loads(path.read_text())
    assert data["profile"] == "h100" and data["device"]["sm_count"] == 132
    assert len(data["rows"]) == len(rows) and data["rows"][1]["error"].startswith("wrong result")
    assert all("features" in r for i, r in enumerate(data["rows"]) if i != 1)
    assert data["fit"]["kernels"] == len(rows) - 1
    first = data["fit"]
    assert load_gpu_calibrate(ROOT).main(["--refit", str(path)]) == 0
    again = json.loads(path.read_text())["fit"]
    assert again["efficiency"] == pytest.approx(first["efficiency"])
    assert again["kendall_tau_after"] == pytest.approx(first["kendall_tau_after"])


def test_refit_of_a_run_without_a_gpu_is_a_one_line_error(small_kit, tmp_path):
    kit, _ = small_kit
    res = tmp_path / "res"
    res.mkdir()
    (res / "calibration.json").write_text(json.dumps({"skipped": "no GPU visible to TVM", "rows": []}))
    (res / "environment.json").write_text("{}")
    with pytest.raises(WoodpeckerError, match="no timed rows"):
        calibration_data(res, kit)


def test_refit_names_a_missing_file(small_kit, tmp_path):
    kit, _ = small_kit
    with pytest.raises(WoodpeckerError, match="calibration.json: no such file"):
        calibration_data(tmp_path, kit)
