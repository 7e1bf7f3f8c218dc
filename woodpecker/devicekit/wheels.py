"""The kit's wheels: the TVM runtime stripped from the installed apache-tvm, tvm-ffi for the device's Python,
typing_extensions, and woodpecker's own source as a pure wheel with no dependencies.

Every wheel is written here (zip + dist-info + RECORD) rather than by a build backend, so that the kit builds
offline from the running environment; only a tvm-ffi for another Python version is fetched with `pip download`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import pathlib
import subprocess
import sys
import zipfile

from woodpecker.errors import WoodpeckerError

TVM_DIST = "apache-tvm"
FFI_DIST = "apache-tvm-ffi"
# the compiler library (259 MB) and the C++ headers/sources a runtime never reads
TVM_RUNTIME_EXCLUDE = ("tvm/lib/libtvm_compiler.so", "tvm/3rdparty/", "tvm/src/", "tvm/include/")
# the wheel tag of every platform-specific wheel the kit carries: the device is x86-64 Linux with glibc >= 2.28
PLATFORM = "manylinux_2_28_x86_64"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(dest_dir: pathlib.Path, name: str, version: str, tag: str, files: dict[str, bytes],
                requires: list[str], compress: bool = True) -> pathlib.Path:
    """A wheel holding `files` (archive name -> bytes) with fresh METADATA, WHEEL and RECORD."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    files = dict(files)
    files[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    pure = tag.endswith("-none-any")
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: woodpecker.devicekit\nRoot-Is-Purelib: {str(pure).lower()}\nTag: {tag}\n"
    ).encode()
    record = [f"{arc},{_record_hash(data)},{len(data)}" for arc, data in sorted(files.items())]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{dist}-{version}-{tag}.whl"
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as zf:
        for arc, data in files.items():
            zf.writestr(arc, data)
    return path


def installed_files(dist_name: str, exclude: tuple[str, ...] = ()) -> tuple[str, dict[str, bytes]]:
    """(version, archive name -> bytes) of an installed distribution, without its dist-info and caches."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise WoodpeckerError(f"{dist_name} is not installed in {sys.prefix}") from None
    out = {}
    for f in dist.files or ():
        arc = f.as_posix()
        if (".dist-info/" in arc or arc.startswith("..") or "__pycache__" in arc or arc.endswith(".pyc")
                or any(arc == e or arc.startswith(e) for e in exclude)):
            continue
        path = pathlib.Path(str(f.locate()))
        if path.is_file():
            out[arc] = path.read_bytes()
    return dist.version, out


def repack_installed(dist_name: str, dest_dir: pathlib.Path, tag: str, exclude: tuple[str, ...] = (),
                     requires: list[str] | None = None, version_suffix: str = "",
                     compress: bool = True) -> pathlib.Path:
    """A wheel of a distribution installed in this interpreter (requires: default, its own Requires-Dist)."""
    version, files = installed_files(dist_name, exclude)
    if requires is None:
        requires = [r for r in importlib.metadata.requires(dist_name) or () if "extra ==" not in r]
    return write_wheel(dest_dir, dist_name, version + version_suffix, tag, files, requires, compress)


def tvm_runtime_wheel(dest_dir: pathlib.Path) -> pathlib.Path:
    """apache-tvm without its compiler: the Python package and libtvm_runtime*.so. The wheel is py3-none, so the
    one installed here serves every CPython; numpy and ml_dtypes are left to the device's environment."""
    ffi_version = importlib.metadata.version(FFI_DIST)
    return repack_installed(TVM_DIST, dest_dir, f"py3-none-{PLATFORM}", TVM_RUNTIME_EXCLUDE,
                            requires=[f"{FFI_DIST}=={ffi_version}"], version_suffix="+runtime")


def _current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def ffi_wheel(dest_dir: pathlib.Path, python_version: str) -> pathlib.Path:
    """tvm-ffi (a compiled extension) for the device's CPython: repacked from this interpreter when the versions
    match, else downloaded from PyPI at the version installed here (the pin in pyproject.toml)."""
    version = importlib.metadata.version(FFI_DIST)
    if python_version == _current_python():
        cp = "cp" + python_version.replace(".", "")
        return repack_installed(FFI_DIST, dest_dir, f"{cp}-{cp}-{PLATFORM}", requires=[])
    before = set(dest_dir.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", f"{FFI_DIST}=={version}", "--python-version", python_version,
           "--only-binary=:all:", "--platform", PLATFORM, "--no-deps", "-q", "-d", str(dest_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise WoodpeckerError(f"cannot download {FFI_DIST}=={version} for Python {python_version}: {tail}")
    new = sorted(set(dest_dir.glob("*.whl")) - before)
    return new[0] if new else next(dest_dir.glob(f"{FFI_DIST.replace('-', '_')}-{version}-*.whl"))


def woodpecker_wheel(dest_dir: pathlib.Path, root: pathlib.Path) -> pathlib.Path:
    """woodpecker's source (and the data folders setup.py maps into woodpecker/_data) as a pure wheel with no
    dependencies: on the device only the runtime path is used, which needs numpy and tvm alone."""
    from woodpecker.version import __version__

    files: dict[str, bytes] = {}
    for path in sorted((root / "woodpecker").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    for name in ("kernels", "search_spaces", "hw_profiles"):
        for path in sorted((root / name).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[f"woodpecker/_data/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return write_wheel(dest_dir, "woodpecker", __version__, "py3-none-any", files, requires=[])
