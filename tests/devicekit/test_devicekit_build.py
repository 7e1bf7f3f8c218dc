"""The kit builder: what goes into the kit, the wheels it writes, the size limit, and refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import zipfile

import pytest

from woodpecker.devicekit import MAX_KIT_BYTES
from woodpecker.devicekit.build import build_kit, folder_bytes
from woodpecker.errors import WoodpeckerError


def _wheel(kit, prefix):
    return next((kit / "wheels").glob(f"{prefix}-*.whl"))


def test_kit_layout(small_kit):
    kit, data = small_kit
    assert data["format"] == "woodpecker-devicekit" and data["profile"] == "h100"
    assert os.access(kit / "run.sh", os.X_OK)
    assert {a["backend"] for a in data["artifacts"]} == {"host", "cuda"}
    for a in data["artifacts"]:
        assert {p.name for p in (kit / a["dir"]).iterdir()} >= {"model.wpk", "inputs.npz", "expected.npz"}
    suite = json.loads((kit / "calibration" / "suite.json").read_text())
    assert {r["task"] for r in suite["rows"]} == {"softmax_1000", "layer_norm_768"}
    assert len(suite["rows"]) == data["calibration"]["candidates"] == 6  # default + 2 random points each
    for r in suite["rows"]:
        assert (kit / "calibration" / r["library"]).is_file() and r["features"]
    assert (kit / "tests" / "conftest.py").is_file()
    assert data["bytes"] == folder_bytes(kit) or data["bytes"] <= folder_bytes(kit)


def test_tvm_wheel_is_the_runtime_only(small_kit):
    kit, _ = small_kit
    names = zipfile.ZipFile(_wheel(kit, "apache_tvm")).namelist()
    assert "tvm/lib/libtvm_runtime.so" in names and "tvm/lib/libtvm_runtime_cuda.so" in names
    assert not any(n.endswith("libtvm_compiler.so") or n.startswith("tvm/3rdparty/") for n in names)


def test_woodpecker_wheel_has_no_dependencies_and_carries_its_data(small_kit):
    kit, _ = small_kit
    zf = zipfile.ZipFile(_wheel(kit, "woodpecker"))
    names = set(zf.namelist())
    assert "woodpecker/dsl/grammar.lark" in names and "woodpecker/runtime/cuda_load.py" in names
    assert any(n.startswith("woodpecker/_data/hw_profiles/") for n in names)
    meta = zf.read("woodpecker-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist" not in meta
    # every RECORD line's hash is the file's: pip refuses a wheel whose RECORD lies
    for line in zf.read("woodpecker-0.1.0.dist-info/RECORD").decode().splitlines():
        arc, digest, _ = line.split(",")
        if digest:
            want = base64.urlsafe_b64encode(hashlib.sha256(zf.read(arc)).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}", arc


def test_a_cpu_profile_is_refused(tmp_path):
    with pytest.raises(WoodpeckerError, match="not a GPU profile"):
        build_kit(tmp_path / "kit", "host", models=[], log=lambda *_: None)


def test_a_folder_that_is_not_a_kit_is_not_emptied(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(WoodpeckerError, match="not a kit"):
        build_kit(tmp_path, "h100", models=[], log=lambda *_: None)
    assert (tmp_path / "precious.txt").exists()


@pytest.mark.slow
def test_the_default_kit_fits_the_size_limit(tmp_path):
    """The kit as run.sh ships it (every model and the whole calibration suite), for this Python: tvm-ffi's
    wheel is the only part that differs between Python versions, by a few kB."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    data = build_kit(tmp_path / "kit", "h100", version, log=lambda *_: None)
    assert data["bytes"] <= MAX_KIT_BYTES
    suite = json.loads((tmp_path / "kit" / "calibration" / "suite.json").read_text())
    assert len({r["task"] for r in suite["rows"]}) == 13
