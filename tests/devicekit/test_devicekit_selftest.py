"""The kit's CPU self-test: installed into a clean virtual environment that has no TVM (only numpy, repacked from
this interpreter), run.sh loads the host artifact with TVM's runtime alone, checks it against the onnxruntime
outputs stored in the kit and writes its JSON; GPU parts report that they were skipped and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from woodpecker.devicekit.wheels import repack_installed


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    cp = f"cp{sys.version_info.major}{sys.version_info.minor}"
    # stored, not deflated: this wheel only crosses a temporary folder
    repack_installed("numpy", root / "wheels", f"{cp}-{cp}-manylinux_2_28_x86_64", requires=[], compress=False)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    py = root / "venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check",
                    "--find-links", str(root / "wheels"), "numpy"], check=True)
    probe = subprocess.run([str(py), "-c", "import tvm"], capture_output=True)
    assert probe.returncode != 0, "the clean environment must not see an installed TVM"
    return py


def test_run_sh_cpu_part_in_a_clean_environment(small_kit, clean_python, tmp_path):
    kit, _ = small_kit
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHON"] = str(clean_python)
    proc = subprocess.run(["bash", str(kit / "run.sh"), str(tmp_path / "res"), "--parts",
                           "artifacts,calibration,compile", "--repeat", "2"],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = tmp_path / "res"
    environment = json.loads((res / "environment.json").read_text())
    assert environment["tvm_runtime_only"] is True and environment["tvm_gpu"] is False
    assert str(kit) not in environment["tvm_path"] and "site" in environment["tvm_path"]
    arts = {a["backend"]: a for a in json.loads((res / "artifacts.json").read_text())}
    host = arts["host"]
    assert host["ok"] is True and max(host["max_rel_err"].values()) <= 1e-3
    assert host["timings"]["woodpecker"]["repeat"] == 2 and host["timings"]["woodpecker"]["median_s"] > 0
    assert host["timings"]["onnxruntime"] == {"skipped": "onnxruntime is not installed"}
    assert arts["cuda"]["skipped"].startswith("no GPU") and arts["cuda"]["load_s"] >= 0  # loads without a GPU
    assert json.loads((res / "calibration.json").read_text())["skipped"] == "no GPU visible to TVM"
    assert all(c["skipped"] for c in json.loads((res / "compile.json").read_text()))
    summary = json.loads((res / "summary.json").read_text())
    assert summary["ok"] is True and set(summary["parts"]) == {"artifacts", "calibration", "compile"}


def test_run_sh_usage_error(small_kit, tmp_path):
    kit, _ = small_kit
    proc = subprocess.run(["bash", str(kit / "run.sh")], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_run_sh_refuses_another_python(small_kit, tmp_path):
    import shutil

    kit, _ = small_kit
    other = tmp_path / "kit"
    shutil.copytree(kit, other)
    data = json.loads((other / "kit.json").read_text())
    (other / "kit.json").write_text(json.dumps({**data, "python_version": "2.7"}))
    proc = subprocess.run(["bash", str(other / "run.sh"), str(tmp_path / "res")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 2 and "built for Python 2.7" in proc.stderr
