"""The .wpk artifact: a zip holding a versioned JSON manifest, the native library, the weights and the DSL sources.

  manifest.json      format name and version, toolchain, target, inputs/outputs, program, kernels, file hashes
  kernels.so         the TVM-exported library (native code: load artifacts only from sources you trust)
  riscv/*.o, riscv/model.c, model.h, weights.S/.bin   instead, for a RISC-V/MCU target: the kernel objects and
                     the C entry point a firmware project links (backend "riscv" in the manifest)
  cuda/kernels.cu    for a GPU target (backend "cuda"), the CUDA source that kernels.so also embeds; TVM compiles
                     it for the attached GPU when the library is loaded
  weights.npz        constants, numpy format, loaded with allow_pickle=False
  dsl/<kernel>.wpl   the DSL program of each kernel
  vendor/regions.json  the operators the planner gave to a vendor library (canonical nodes, rebuilt at load)
  vendor/model.onnx  the original model, only when the planner chose onnxruntime for the whole model

Loading verifies the format, the version and the sha256 of every file before the library is loaded; the library
is unpacked into the cache under its own hash, so a tampered file is never executed. This module writes and
verifies the format; woodpecker.runtime.load turns a verified artifact into a runnable model.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from woodpecker.errors import ArtifactError

if TYPE_CHECKING:
    from woodpecker.runtime.compiled import CompiledModel

FORMAT = "woodpecker-artifact"
VERSION = 2  # 2: a program may store concat inputs inside the concat's output (Program.slices)
READABLE = (1, 2)  # a version-1 artifact is a version-2 one without slices; version 1 readers refuse 2
LIBRARY = "kernels.so"
WEIGHTS = "weights.npz"
VENDOR_REGIONS = "vendor/regions.json"
BACKENDS = ("host", "riscv", "cuda")
VENDOR_MODEL = "vendor/model.onnx"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """The .npz format np.savez writes, without passing names as keyword arguments: a constant named `file` or
    `allow_pickle` (names come from the ONNX model) would clash with savez's own parameters."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.require(value, requirements="C"), allow_pickle=False)
    return buf.getvalue()


def save_artifact(model: CompiledModel, path: str | os.PathLike[str]) -> None:
    path = pathlib.Path(path)
    files: dict[str, bytes] = dict(model.payload_files())
    files[WEIGHTS] = write_npz(model.constants)
    for k in model.kernels:
        files[f"dsl/{k.name}.wpl"] = k.source.encode()
    if model.vendor_regions:
        regions = {name: region.to_json() for name, region in model.vendor_regions.items()}
        files[VENDOR_REGIONS] = json.dumps(regions, sort_keys=True).encode()
    if model.model_onnx is not None:
        files[VENDOR_MODEL] = model.model_onnx
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "backend": model.backend,
        **model.metadata,
        "program": model.program.to_json(),
        "kernels": [k.to_json() for k in model.kernels],
        "files": {name: _sha(data) for name, data in files.items()},
    }
    tmp_path = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp_path, "w") as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True),
                        compress_type=zipfile.ZIP_DEFLATED)
            for name, data in files.items():
                method = zipfile.ZIP_STORED if name in (LIBRARY, WEIGHTS) else zipfile.ZIP_DEFLATED
                zf.writestr(name, data, compress_type=method)
        os.replace(tmp_path, path)  # a crash while writing never leaves a half-written artifact under the real name
    except OSError as err:  # a missing folder, a full disk, no permission: the user's to fix, in one line
        tmp_path.unlink(missing_ok=True)
        raise ArtifactError(f"{path}: cannot write the artifact ({err.strerror or err})") from None


def read_manifest(path: str | os.PathLike[str]) -> tuple[dict, dict[str, bytes]]:
    """Open and verify an artifact: returns its manifest and file contents (hashes checked)."""
    label = str(path)
    p = pathlib.Path(path)
    if not p.exists():
        raise ArtifactError(f"{label}: no such file")
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError):
        raise ArtifactError(f"{label}: not a woodpecker artifact (not a zip archive, or truncated)") from None
    with zf:
        try:
            manifest = json.loads(zf.read("manifest.json"))
        except KeyError:
            raise ArtifactError(f"{label}: not a woodpecker artifact (no manifest.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as err:
            raise ArtifactError(f"{label}: corrupt manifest ({err})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArtifactError(f"{label}: not a woodpecker artifact (manifest format is {manifest.get('format')!r})"
                                if isinstance(manifest, dict) else f"{label}: corrupt manifest")
        if manifest.get("version") not in READABLE:
            raise ArtifactError(
                f"{label}: artifact version {manifest.get('version')!r} is not supported by this woodpecker "
                f"(expects {VERSION}); recompile the model"
            )
        listed = manifest.get("files", {})
        if not isinstance(listed, dict):  # hand-edited or foreign: report it, do not fail on .items()
            raise ArtifactError(f"{label}: corrupt manifest (files is not a table)")
        files = {}
        for name, digest in listed.items():
            try:
                data = zf.read(name)
            except (KeyError, zipfile.BadZipFile, OSError):
                raise ArtifactError(f"{label}: file {name} listed in the manifest is missing or unreadable") from None
            if _sha(data) != digest:
                raise ArtifactError(f"{label}: {name} does not match its hash in the manifest (corrupt or modified)")
            files[name] = data
        backend = manifest.get("backend", "host")
        if backend not in BACKENDS:
            raise ArtifactError(f"{label}: unknown kernel backend {backend!r} (expected one of {BACKENDS})")
        for required in (WEIGHTS,) + ((LIBRARY,) if backend in ("host", "cuda") else ()):
            if required not in files:
                raise ArtifactError(f"{label}: {required} is missing")
    return manifest, files
