"""The wheel carries the data folders and the DSL grammar, and a non-editable install finds them."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _build_isolation_args() -> list[str]:
    # Build with this environment's setuptools when it has a recent one (no network needed); otherwise let pip
    # set up an isolated build environment from pyproject's build-system requirements.
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return []
    return ["--no-build-isolation"] if major >= 68 else []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    # Build from a clean copy of the source: an in-tree build/ folder can hold stale files from earlier builds.
    src = tmp_path_factory.mktemp("src") / "woodpecker-src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "*.wpk", "tests"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out), *_build_isolation_args()],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("woodpecker-*.whl")
    return whl


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    kernels = {n for n in names if n.startswith("woodpecker/_data/kernels/") and n.endswith(".wpl")}
    assert {f"woodpecker/_data/kernels/{p.name}" for p in (ROOT / "kernels").glob("*.wpl")} == kernels
    assert "woodpecker/_data/hw_profiles/host.toml" in names
    assert "woodpecker/dsl/grammar.lark" in names
    assert "woodpecker/py.typed" in names
    # the knob spaces: every file of the checkout's search_spaces/ (git does not track an empty folder)
    spaces = {p.relative_to(ROOT / "search_spaces").as_posix() for p in (ROOT / "search_spaces").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert spaces, "search_spaces/ is empty: a wheel would not have the folder at all"
    assert {f"woodpecker/_data/search_spaces/{s}" for s in spaces} <= names
    # no test or build debris
    assert not any(n.startswith(("tests/", "build/")) or "__pycache__" in n for n in names)


def test_installed_wheel_finds_its_data(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = (
        "import woodpecker, woodpecker.data as d\n"
        "print(woodpecker.__file__)\n"
        "for name in ('kernels', 'search_spaces', 'hw_profiles'):\n"
        "    print(d.data_dir(name))\n"
        "from woodpecker.dsl.library import default_library\n"
        "print(len(default_library().templates))\n"
        "from woodpecker.hw.profile import load_profile\n"
        "print(load_profile('host').source)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    # run from an unrelated folder, so that the checkout is not importable from the working directory
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, kernels, spaces, profiles, templates, profile = proc.stdout.split("\n")[:6]
    for path in (module, kernels, spaces, profiles):
        assert pathlib.Path(path).resolve().is_relative_to(target.resolve()), path
    assert pathlib.Path(kernels) == target / "woodpecker" / "_data" / "kernels"
    assert int(templates) >= 20 and profile == "host.toml"
