"""TuningRecord and Device: the units stored in the records database and exchanged as JSON lines."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Mapping
from typing import Any

from woodpecker.errors import DatabaseError

RECORD_FORMAT = "woodpecker-record/1"


@dataclasses.dataclass(frozen=True)
class Device:
    """Where a record was measured. Lookups match all fields: a schedule tuned for one CPU model, or measured on a
    simulator, is never applied as if measured on another device."""

    profile: str  # hardware profile id ("host", "p100", ...)
    profile_hash: str  # content hash of the profile file
    detail: str  # run-time identity: for the host, "<mcpu>/<threads>t"; empty for fixed devices
    simulated: bool

    @property
    def key(self) -> str:
        return f"{self.profile}:{self.profile_hash}:{self.detail}:{'sim' if self.simulated else 'real'}"


@dataclasses.dataclass(frozen=True)
class TuningRecord:
    workload_key: str  # structural hash of the DSL program (shapes and dtypes included)
    device: Device
    toolchain: Mapping[str, str]  # {"woodpecker": ..., "tvm": ...}
    knobs: Mapping[str, Any]  # the schedule decisions (never generated code)
    run_secs: tuple[float, ...]  # every measured repeat; empty on error
    error: str | None  # None when the candidate built, ran and matched the reference
    searcher: str  # "default" | "random" | "ga" | "rl" | "import" ...
    created_at: str  # ISO 8601 UTC
    session: str = ""  # tuning session id

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.run_secs)

    @property
    def latency_us(self) -> float:
        """Median of the repeats in microseconds (inf for failed candidates)."""
        if not self.ok:
            return float("inf")
        return statistics.median(self.run_secs) * 1e6

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "workload_key": self.workload_key,
            "device": dataclasses.asdict(self.device),
            "toolchain": dict(self.toolchain),
            "knobs": dict(self.knobs),
            "run_secs": list(self.run_secs),
            "error": self.error,
            "searcher": self.searcher,
            "created_at": self.created_at,
            "session": self.session,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> TuningRecord:
        if d.get("format") != RECORD_FORMAT:
            raise DatabaseError(f"record format {d.get('format')!r} is not {RECORD_FORMAT!r}")
        try:
            return TuningRecord(
                workload_key=str(d["workload_key"]),
                device=Device(**d["device"]),
                toolchain={str(k): str(v) for k, v in d["toolchain"].items()},
                knobs=dict(d["knobs"]),
                run_secs=tuple(float(x) for x in d["run_secs"]),
                error=d["error"],
                searcher=str(d["searcher"]),
                created_at=str(d["created_at"]),
                session=str(d.get("session", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DatabaseError(f"malformed record ({err})") from None

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)
