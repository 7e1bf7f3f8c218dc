"""HardwareProfile: a device described by a reviewed data file in hw_profiles/, resolved by id or alias.

`--target p100` resolves through the aliases of every profile; an unknown name is a one-line error listing the
known ones. A malformed profile file is reported with its file name and the field at fault. The folder is the
built-in hw_profiles/, or WOODPECKER_PROFILES_DIR (config.profiles_dir) when set.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
import tomllib
from collections.abc import Mapping
from typing import Any

from woodpecker.data import data_dir
from woodpecker.errors import TargetError

KINDS = ("cpu", "gpu", "riscv", "mcu")
REQUIRED = ("id", "name", "kind", "target_class", "measurement", "target")


@dataclasses.dataclass(frozen=True)
class HardwareProfile:
    id: str
    name: str
    kind: str  # cpu | gpu | riscv | mcu
    target_class: str  # which search spaces and schedule templates apply
    measurement: str  # "real", or "simulated:<simulator>"
    aliases: tuple[str, ...]
    target: Mapping[str, Any]  # TVM target description (dict form)
    params: Mapping[str, Any]  # device numbers (peak FLOP/s, bandwidth, ...) for models and reports
    source: str  # file the profile came from
    content_hash: str  # sha256 of that file: records and plans are keyed to it

    @property
    def simulated(self) -> bool:
        return self.measurement.startswith("simulated")


def _parse(path: pathlib.Path) -> HardwareProfile:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise TargetError(f"hardware profile {path.name} cannot be read ({err.strerror or err})") from None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise TargetError(f"hardware profile {path.name} is malformed: {err}") from None
    for field in REQUIRED:
        if field not in data:
            raise TargetError(f"hardware profile {path.name} is malformed: missing field '{field}'")
    if data["kind"] not in KINDS:
        raise TargetError(f"hardware profile {path.name}: field 'kind' is {data['kind']!r}, expected one of {KINDS}")
    if not isinstance(data["target"], dict) or "kind" not in data["target"]:
        raise TargetError(f"hardware profile {path.name}: field 'target' must be a table with a 'kind'")
    m = data["measurement"]
    if not isinstance(m, str) or not (m == "real" or m.startswith("simulated:")):
        raise TargetError(f"hardware profile {path.name}: field 'measurement' must be 'real' or 'simulated:<name>'")
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise TargetError(f"hardware profile {path.name}: field 'aliases' must be a list of strings")
    params = {k: v for k, v in data.items() if k not in REQUIRED and k != "aliases"}
    return HardwareProfile(
        id=str(data["id"]),
        name=str(data["name"]),
        kind=data["kind"],
        target_class=str(data["target_class"]),
        measurement=m,
        aliases=tuple(aliases),
        target=data["target"],
        params=params,
        source=path.name,
        content_hash=hashlib.sha256(raw).hexdigest()[:16],
    )


@functools.lru_cache(maxsize=4)
def _load_all(directory: str) -> dict[str, HardwareProfile]:
    if not pathlib.Path(directory).is_dir():
        raise TargetError(f"hardware profile folder {directory}: no such folder")
    profiles = {}
    for path in sorted(pathlib.Path(directory).glob("*.toml")):
        p = _parse(path)
        if p.id in profiles:
            raise TargetError(f"hardware profile id {p.id!r} is defined twice ({profiles[p.id].source}, {path.name})")
        profiles[p.id] = p
    return profiles


def profiles_dir() -> pathlib.Path:
    from woodpecker import config

    return config.get().profiles_dir or data_dir("hw_profiles")


def list_profiles(directory: pathlib.Path | None = None) -> list[HardwareProfile]:
    return list(_load_all(str(directory or profiles_dir())).values())


def load_profile(name: str, directory: pathlib.Path | None = None) -> HardwareProfile:
    profiles = _load_all(str(directory or profiles_dir()))
    key = name.strip().lower()
    for p in profiles.values():
        if key == p.id.lower() or key in (a.lower() for a in p.aliases):
            return p
    known = ", ".join(sorted(profiles))
    raise TargetError(f"unknown target {name!r}; known targets: {known} (see `woodpecker targets`)")
