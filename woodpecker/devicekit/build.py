"""Build a device kit (here, without a GPU): wheels, artifacts, the calibration suite, the kit's tests and run.sh.

    python -m woodpecker.devicekit build KIT [--profile h100] [--python-version 3.12] [--models a,b]
"""

from __future__ import annotations

import json
import pathlib
import shutil
import stat
import time

from woodpecker.devicekit import KIT_FORMAT, KIT_VERSION, MAX_KIT_BYTES
from woodpecker.devicekit import artifacts as _artifacts
from woodpecker.devicekit import suite as _suite
from woodpecker.devicekit import wheels as _wheels
from woodpecker.errors import WoodpeckerError

ROOT = pathlib.Path(__file__).resolve().parents[2]
KIT_TESTS = ROOT / "tests" / "devicekit" / "kit_tests"

RUN_SH = r"""#!/usr/bin/env bash
# Validate woodpecker's GPU path on this machine: ./run.sh RESULTS_DIR [runner options, see --help]
# Installs the kit's wheels (TVM runtime only, tvm-ffi, woodpecker) into a temporary prefix with pip --no-index,
# then runs python -m woodpecker.devicekit.run, which writes RESULTS_DIR/*.json. PYTHON picks the interpreter.
set -euo pipefail
KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then echo "usage: $0 RESULTS_DIR [--parts ...] [--budget-s S]" >&2; exit 2; fi
OUT="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
PY="${PYTHON:-python3}"
PREFIX="$(mktemp -d "${TMPDIR:-/tmp}/woodpecker-kit.XXXXXX")"
trap 'rm -rf "$PREFIX"' EXIT
WANT="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["python_version"])' "$KIT/kit.json")"
HAVE="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$WANT" != "$HAVE" ]; then echo "error: the kit is built for Python $WANT, $PY is $HAVE (rebuild with --python-version $HAVE)" >&2; exit 2; fi
# --target keeps the interpreter's own packages (torch, numpy, onnxruntime) visible; --no-deps because the
# kit carries exactly what the device lacks. Without pip, a wheel unpacked in place installs the same files.
if "$PY" -m pip --version >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$PREFIX/site" "$KIT"/wheels/*.whl
else
  "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$PREFIX/site" "$KIT"/wheels/*.whl
fi
export PYTHONPATH="$PREFIX/site${PYTHONPATH:+:$PYTHONPATH}"
export TVM_USE_RUNTIME_LIB=1                                      # the kit has no compiler library
export WOODPECKER_CACHE_DIR="$PREFIX/cache"
cd "$PREFIX"                                                      # no checkout on sys.path shadows the install
exec "$PY" -m woodpecker.devicekit.run "$KIT" "$OUT" "$@"
"""


def folder_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_kit(out: pathlib.Path, profile: str = "h100", python_version: str = "3.12",
              models: list[str] | None = None, points: int = 3, calibration_tasks: list[str] | None = None,
              log=print) -> dict:
    """Write the kit into `out` (emptied first) and return its kit.json; raises when it exceeds the limit."""
    from woodpecker.hw.profile import load_profile

    prof = load_profile(profile)
    if prof.target.get("kind") != "cuda":
        raise WoodpeckerError(f"profile {profile!r} is not a GPU profile")
    if out.exists():
        if not (out / "kit.json").exists() and any(out.iterdir()):
            raise WoodpeckerError(f"{out}: exists and is not a kit; refusing to empty it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    wheel_dir = out / "wheels"
    wheels = [_wheels.tvm_runtime_wheel(wheel_dir), _wheels.ffi_wheel(wheel_dir, python_version),
              _wheels.repack_installed("typing_extensions", wheel_dir, "py3-none-any", requires=[]),
              _wheels.woodpecker_wheel(wheel_dir, ROOT)]
    log(f"wheels: {', '.join(w.name for w in wheels)} ({time.perf_counter() - t0:.0f} s)")
    entries = [_artifacts.build_artifact(out / "artifacts", _artifacts.SELFTEST_MODEL, "host")]
    for name in models if models is not None else _artifacts.DEFAULT_GPU_MODELS:
        entries.append(_artifacts.build_artifact(out / "artifacts", name, prof.id))
        log(f"artifact {name} for {prof.id} ({time.perf_counter() - t0:.0f} s)")
    suite = _suite.build_suite(out / "calibration", ROOT, prof.id, points, tasks=calibration_tasks)
    log(f"calibration suite: {len(suite['rows'])} candidates ({time.perf_counter() - t0:.0f} s)")
    shutil.copytree(KIT_TESTS, out / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the kit's tests are their own pytest root: a repository's pyproject.toml above the kit (the device gets
    # the kit inside a checkout) would bring options for plugins the device lacks
    (out / "tests" / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs an NVIDIA GPU\n")
    run_sh = out / "run.sh"
    run_sh.write_text(RUN_SH)
    run_sh.chmod(run_sh.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    kit = {"format": KIT_FORMAT, "version": KIT_VERSION, "profile": prof.id, "python_version": python_version,
           "wheels": [w.name for w in wheels], "artifacts": entries,
           "calibration": {"candidates": len(suite["rows"]), "points": points},
           "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / "kit.json").write_text(json.dumps(kit, indent=1) + "\n")
    size = folder_bytes(out)
    kit["bytes"] = size
    (out / "kit.json").write_text(json.dumps(kit, indent=1) + "\n")
    if size > MAX_KIT_BYTES:
        raise WoodpeckerError(f"{out}: the kit is {size / 2**20:.1f} MiB, over the {MAX_KIT_BYTES / 2**20:.0f} MiB "
                              f"limit; pass fewer --models or --points")
    log(f"kit {out}: {size / 2**20:.1f} MiB in {time.perf_counter() - t0:.0f} s")
    return kit
