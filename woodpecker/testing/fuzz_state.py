"""A fuzz campaign's state: one JSON line per graph run, appended as each finishes, so a killed campaign loses at
most the graph in flight and a rerun of the same command continues with the seeds not yet done.

Each line: {"seed", "status", "wall_s", "generator", "recheck"}, and "detail", "ops" unless the status is ok.
A seed's first record (recheck false) is its campaign result; records with recheck true come from
`scripts/fuzz.py --recheck`, which reruns the seeds that failed, and the newest of them says whether the failure
is fixed. `generator` is a hash of the graphs the generator makes: the same seed gives another graph under another
generator, so the summary counts them apart. A last line cut short by a kill is ignored (its seed runs again).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Iterable, Sequence

__all__ = ["FAILED", "CampaignState", "generator_version"]

FAILED = ("mismatch", "crash")


def generator_version(probes: int = 32) -> str:
    """12 hex digits of the hash of the graphs of the first `probes` seeds: what the generator makes, not its source
    text (an edit that leaves the graphs alone keeps the version; one that changes them changes it)."""
    from woodpecker.testing.fuzz import generate

    digest = hashlib.sha256()
    for seed in range(probes):
        digest.update(generate(seed).model.SerializeToString())
    return digest.hexdigest()[:12]


@dataclasses.dataclass
class CampaignState:
    path: pathlib.Path
    first: dict[int, dict] = dataclasses.field(default_factory=dict)  # seed -> its campaign record
    latest: dict[int, dict] = dataclasses.field(default_factory=dict)  # seed -> its newest record
    cut_short: bool = False  # the file ends in a partial line: the next record starts on a new line

    @classmethod
    def load(cls, path: pathlib.Path) -> CampaignState:
        state = cls(pathlib.Path(path))
        if state.path.exists():
            text = state.path.read_text(encoding="utf-8")
            state.cut_short = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                state._note(record)
        return state

    def _note(self, record: dict) -> None:
        seed = int(record["seed"])
        if not record.get("recheck"):
            self.first.setdefault(seed, record)
        self.latest[seed] = record

    def todo(self, seeds: Iterable[int]) -> list[int]:
        """The seeds that have no campaign record yet, in order."""
        return [s for s in seeds if s not in self.first]

    def failing(self, invalid: bool = False) -> list[int]:
        """Seeds whose newest record is still a mismatch or a crash (or, with `invalid`, a graph onnxruntime
        refused)."""
        bad = FAILED + ("invalid",) if invalid else FAILED
        return sorted(s for s, rec in self.latest.items() if rec["status"] in bad)

    def record(self, seed: int, status: str, detail: str, ops: Iterable[str], wall_s: float,
               recheck: bool = False, generator: str | None = None) -> None:
        rec = {"seed": int(seed), "status": status, "wall_s": round(wall_s, 3),
               "generator": generator or generator_version(), "recheck": recheck}
        if status != "ok":  # what failed, and on which ops (kept out of the ok lines: 10,000 of them stay small)
            rec.update(detail=detail, ops=list(ops))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:  # one write per line, closed (flushed) at once
            f.write(("\n" if self.cut_short else "") + json.dumps(rec) + "\n")
        self.cut_short = False
        self._note(rec)

    def summary(self, planned: Sequence[int] | None = None) -> dict:
        """The campaign's figures; `planned` (the campaign's seeds) adds how many of them remain to run."""
        first = collections.Counter(rec["status"] for rec in self.first.values())
        found = [s for s, rec in self.first.items() if rec["status"] in FAILED]
        fixed = [s for s in found if self.latest[s]["status"] not in FAILED]
        out = {
            "graphs": len(self.first),
            "ok": first["ok"],
            "mismatches_found": first["mismatch"],
            "crashes_found": first["crash"],
            "fixed": len(fixed),
            "remaining": len(found) - len(fixed),
            "invalid": first["invalid"],
            "seconds": round(sum(rec.get("wall_s", 0.0) for rec in self.first.values()), 1),
            "failing_seeds": sorted(s for s in found if s not in fixed),
            "fixed_seeds": sorted(fixed),
            "generators": dict(collections.Counter(rec.get("generator", "?") for rec in self.first.values())),
        }
        if planned is not None:
            out["planned"] = len(planned)
            out["seeds_left"] = len(self.todo(planned))
        return out
