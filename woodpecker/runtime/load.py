"""Loading a saved artifact (woodpecker.runtime.artifact writes and verifies the format): the manifest and files,
checked, become the runtime model of the artifact's backend: CompiledModel (host), GpuModel (cuda) or
SimulatedModel (riscv)."""

from __future__ import annotations

import io
import json
import os
import pathlib

import numpy as np

from woodpecker import config
from woodpecker.errors import ArtifactError
from woodpecker.runtime.artifact import LIBRARY, VENDOR_MODEL, VENDOR_REGIONS, WEIGHTS, _sha, read_manifest
from woodpecker.runtime.compiled import CompiledModel, KernelInfo
from woodpecker.runtime.executor import Program


def _load_simulated(manifest: dict, files: dict[str, bytes], label: str) -> CompiledModel:
    from woodpecker.runtime.simulated import SimulatedModel

    cache = config.get().cache_dir / "objects"
    cache.mkdir(parents=True, exist_ok=True)
    objects = {}
    for name, data in files.items():
        if name.startswith("riscv/") and name.endswith(".o"):
            obj = cache / f"{_sha(data)}.o"  # content-addressed: the bytes were just verified against the manifest
            if not obj.exists():
                tmp = cache / f"{_sha(data)}.{os.getpid()}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, obj)
            objects[name[len("riscv/"):-2]] = obj
    program, constants, kernels, _ = _contents(manifest, files, label)
    missing = [c.func for c in program.calls if c.func not in objects]
    if missing:
        raise ArtifactError(f"{label}: kernel object riscv/{missing[0]}.o is missing")
    metadata = {k: v for k, v in manifest.items() if k not in ("program", "kernels", "files", "format", "version")}
    return SimulatedModel(program, constants, kernels, metadata, objects, str(manifest["target"]["profile"]),
                          files.get("reference/model.onnx"))


def _contents(manifest: dict, files: dict[str, bytes], label: str):
    """Program, constants, kernel infos and vendor regions of a verified artifact."""
    try:
        with np.load(io.BytesIO(files[WEIGHTS]), allow_pickle=False) as npz:
            constants = {k: npz[k] for k in npz.files}
        program = Program.from_json(manifest["program"])
        kernels = []
        for k in manifest["kernels"]:
            source = files.get(k["source_file"], b"").decode()
            kernels.append(KernelInfo(k["key"], k["name"], k["family"], int(k["flops"]), k["knobs"], k["origin"],
                                      source, int(k.get("calls", 1))))
        from woodpecker.runtime.region import Region

        vendor_regions = {name: Region.from_json(r) for name, r in json.loads(files.get(VENDOR_REGIONS, b"{}")).items()}
        missing = [c.func for c in program.calls if c.vendor and c.func not in vendor_regions]
        if missing:
            raise ArtifactError(f"{label}: vendor call {missing[0]} has no region in {VENDOR_REGIONS}")
    except (KeyError, ValueError, TypeError) as err:
        raise ArtifactError(f"{label}: corrupt artifact content ({err})") from None
    return program, constants, kernels, vendor_regions


def _mixes_runtimes(manifest: dict) -> bool:
    """Whether the program has vendor calls; a damaged program says no here and is reported by _contents."""
    try:
        return any(c.get("vendor") for c in manifest["program"]["calls"])
    except (KeyError, TypeError, AttributeError):
        return False


def load_artifact(path: str | os.PathLike[str]) -> CompiledModel:
    manifest, files = read_manifest(path)
    label = str(path)
    if manifest.get("backend", "host") == "riscv":
        return _load_simulated(manifest, files, label)
    lib_path = _unpack_library(manifest, files)
    if manifest.get("backend") == "cuda":
        return _load_gpu(manifest, files, label, lib_path)
    if _mixes_runtimes(manifest):
        from woodpecker import config

        # a per-call mix runs several runtimes in this process: as it was planned and timed, none may spin
        config.use_passive_waits()
    import tvm  # after the checks: importing TVM takes seconds, a damaged artifact is reported at once

    try:
        library = tvm.runtime.load_module(str(lib_path))
    except Exception as err:
        raise ArtifactError(f"{label}: the kernel library cannot be loaded on this machine ({str(err).splitlines()[0]})") from None
    program, constants, kernels, vendor_regions = _contents(manifest, files, label)
    metadata = {k: v for k, v in manifest.items() if k not in ("program", "kernels", "files", "format", "version")}
    return CompiledModel(library, program, constants, kernels, metadata, library_path=str(lib_path),
                         vendor_regions=vendor_regions, model_onnx=files.get(VENDOR_MODEL))


def _unpack_library(manifest: dict, files: dict[str, bytes]) -> pathlib.Path:
    """The verified library, unpacked into the cache under its own hash (a tampered copy there is replaced)."""
    lib_hash = manifest["files"][LIBRARY]
    cache = config.get().cache_dir / "libs"
    cache.mkdir(parents=True, exist_ok=True)
    lib_path = cache / f"{lib_hash}.so"
    if not lib_path.exists() or _sha(lib_path.read_bytes()) != lib_hash:
        tmp = cache / f"{lib_hash}.{os.getpid()}.tmp"
        tmp.write_bytes(files[LIBRARY])
        os.replace(tmp, lib_path)
    return lib_path


def _load_gpu(manifest: dict, files: dict[str, bytes], label: str, lib_path: pathlib.Path) -> CompiledModel:
    """A GPU model: the library is loaded (its CUDA source compiled) on the first run, where a GPU is attached."""
    from woodpecker.runtime.gpu import CUDA_SOURCE, GpuModel

    if CUDA_SOURCE not in files:
        raise ArtifactError(f"{label}: {CUDA_SOURCE} is missing")
    program, constants, kernels, vendor_regions = _contents(manifest, files, label)
    metadata = {k: v for k, v in manifest.items() if k not in ("program", "kernels", "files", "format", "version")}
    return GpuModel(program, constants, kernels, metadata, str(lib_path), files[CUDA_SOURCE].decode(),
                    vendor_regions=vendor_regions)
