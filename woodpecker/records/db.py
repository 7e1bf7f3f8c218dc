"""RecordsDatabase: tuning records in one SQLite file (WAL mode, one transaction per batch of results).

SQLite survives a killed process without a torn record: a batch is either committed whole or not at all, and a
committed batch is on disk. The schema version lives in the file; a file of another version, or one that is not a
woodpecker records database, is refused with a one-line error rather than misread. JSON lines are the exchange
format between machines (`export_jsonl` / `import_jsonl`).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import pathlib
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from woodpecker.errors import DatabaseError
from woodpecker.records.schema import Device, TuningRecord
from woodpecker.space.space import canonical_json, point_key

SCHEMA_VERSION = 1
APPLICATION = "woodpecker-records"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workloads (
    key TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    name TEXT NOT NULL,
    flops INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    workload_key TEXT NOT NULL,
    device_key TEXT NOT NULL,
    device TEXT NOT NULL,
    toolchain_key TEXT NOT NULL,
    toolchain TEXT NOT NULL,
    knobs_key TEXT NOT NULL,
    knobs TEXT NOT NULL,
    run_secs TEXT NOT NULL,
    latency_us REAL,
    error TEXT,
    searcher TEXT NOT NULL,
    session TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (workload_key, device_key, toolchain_key, knobs_key)
);
CREATE INDEX IF NOT EXISTS records_lookup ON records (workload_key, device_key, toolchain_key, latency_us);
"""
# A tuned schedule re-timed side by side with its task's default at the end of a session (woodpecker.tuner): the
# median over alternated pairs of default / tuned. Added to version-1 files when they are opened for writing.
_VERDICTS = """
CREATE TABLE IF NOT EXISTS verdicts (
    workload_key TEXT NOT NULL,
    device_key TEXT NOT NULL,
    toolchain_key TEXT NOT NULL,
    knobs_key TEXT NOT NULL,
    speedup REAL NOT NULL,
    pairs INTEGER NOT NULL,
    session TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


_VERDICT_FIELDS = ("workload_key", "device_key", "toolchain_key", "knobs_key", "speedup", "pairs", "session",
                   "created_at")
VERDICT_FORMAT = "woodpecker-verdict/1"  # a verdict's line in an exported .jsonl

_F = TypeVar("_F")


def _guarded(method: _F) -> _F:
    """SQLite reports a damaged file (a valid header, corrupt pages) only when a query touches the damage, long
    after the database was opened: turn that into the one-line DatabaseError naming the file."""

    @functools.wraps(method)  # type: ignore[arg-type]
    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)  # type: ignore[operator]
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
                raise DatabaseError(f"{self.path}: the records database is locked by another process") from None
            raise DatabaseError(f"{self.path}: the records database is corrupt ({err})") from None

    return run  # type: ignore[return-value]


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def toolchain_key(toolchain: Mapping[str, str]) -> str:
    return canonical_json(toolchain)


class RecordsDatabase:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = pathlib.Path(path)
        label = str(self.path)
        if self.path.exists() and self.path.is_dir():
            raise DatabaseError(f"{label}: is a directory, not a records database")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: committed data survives a process kill
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            raise DatabaseError(f"{label}: not a woodpecker records database ({err})") from None
        if tables and "meta" not in tables:
            self.conn.close()
            raise DatabaseError(f"{label}: an SQLite file, but not a woodpecker records database")
        if "meta" in tables:
            try:
                meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            except sqlite3.DatabaseError as err:
                raise DatabaseError(f"{label}: the records database is corrupt ({err})") from None
            if meta.get("application") != APPLICATION:
                raise DatabaseError(f"{label}: not a woodpecker records database (application {meta.get('application')!r})")
            try:
                version = int(meta.get("schema_version", -1))
            except ValueError:
                raise DatabaseError(f"{label}: corrupt records database (schema version "
                                    f"{meta.get('schema_version')!r} is not a number)") from None
            if version != SCHEMA_VERSION:
                raise DatabaseError(
                    f"{label}: records schema version {version} is not supported (this woodpecker reads version "
                    f"{SCHEMA_VERSION}); export the records with the woodpecker that wrote them"
                )
        else:
            with self._transaction():
                # one statement at a time: executescript would commit the surrounding transaction early
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self.conn.execute(statement)
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('application', ?)", (APPLICATION,))
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        try:
            self.conn.execute(_VERDICTS)
        except sqlite3.OperationalError:  # a read-only file: its verdicts are none
            pass

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _transaction(self):
        conn = self.conn

        class _Tx:
            def __enter__(self_inner):
                conn.execute("BEGIN IMMEDIATE")
                return conn

            def __exit__(self_inner, exc_type, exc, tb):
                conn.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RecordsDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------------------
    @_guarded
    def commit_workload(self, key: str, family: str, name: str, flops: int, source: str) -> None:
        with self._transaction() as c:
            c.execute("INSERT OR IGNORE INTO workloads VALUES (?, ?, ?, ?, ?)", (key, family, name, int(flops), source))

    @_guarded
    def add(self, records: Iterable[TuningRecord]) -> int:
        """Store a batch in one transaction; a record already present (same workload, device, toolchain, knobs)
        is kept as it is. Returns the number of new records."""
        rows = []
        for r in records:
            rows.append((
                r.workload_key, r.device.key, json.dumps(r.to_json()["device"], sort_keys=True),
                toolchain_key(r.toolchain), canonical_json(r.toolchain), point_key(r.knobs), canonical_json(r.knobs),
                json.dumps(list(r.run_secs)), r.latency_us if r.ok else None, r.error, r.searcher, r.session,
                r.created_at,
            ))
        if not rows:
            return 0
        with self._transaction() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO records (workload_key, device_key, device, toolchain_key, toolchain, knobs_key,"
                " knobs, run_secs, latency_us, error, searcher, session, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return c.total_changes - before

    @_guarded
    def add_verdict(self, workload_key: str, device: Device, toolchain: Mapping[str, str], knobs: Mapping[str, Any],
                    speedup: float, pairs: int, session: str, created_at: str) -> None:
        """A schedule's side-by-side re-timing against its task's default (speedup: default / it)."""
        with self._transaction() as c:
            c.execute("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (workload_key, device.key, toolchain_key(toolchain), point_key(knobs), float(speedup),
                       int(pairs), session, created_at))

    @_guarded
    def verdict(self, workload_key: str, device: Device, toolchain: Mapping[str, str],
                knobs: Mapping[str, Any]) -> float | None:
        """The latest side-by-side speedup of these knobs over the default (None: never re-timed)."""
        try:
            row = self.conn.execute(
                "SELECT speedup FROM verdicts WHERE workload_key=? AND device_key=? AND toolchain_key=? AND knobs_key=?"
                " ORDER BY rowid DESC LIMIT 1",
                (workload_key, device.key, toolchain_key(toolchain), point_key(knobs))).fetchone()
        except sqlite3.OperationalError:  # a read-only version-1 file opened before verdicts existed
            return None
        return None if row is None else float(row[0])

    # -- reading -------------------------------------------------------------------------------------------------
    _COLUMNS = "workload_key, device, toolchain, knobs, run_secs, error, searcher, created_at, session"

    def _row(self, row) -> TuningRecord:
        workload_key, device, toolchain, knobs, run_secs, error, searcher, created_at, session = row
        try:
            return TuningRecord(workload_key, Device(**json.loads(device)), json.loads(toolchain), json.loads(knobs),
                                tuple(json.loads(run_secs)), error, searcher, created_at, session)
        except (ValueError, TypeError) as err:  # a row edited by hand or written by something else
            raise DatabaseError(f"{self.path}: a record of workload {workload_key} cannot be read ({err})") from None

    @_guarded
    def top_k(self, workload_key: str, device: Device, toolchain: Mapping[str, str], k: int = 1) -> list[TuningRecord]:
        rows = self.conn.execute(
            f"SELECT {self._COLUMNS} FROM records WHERE workload_key=? AND device_key=? AND toolchain_key=?"
            " AND latency_us IS NOT NULL ORDER BY latency_us ASC, id ASC LIMIT ?",
            (workload_key, device.key, toolchain_key(toolchain), k),
        ).fetchall()
        return [self._row(r) for r in rows]

    def best(self, workload_key: str, device: Device, toolchain: Mapping[str, str]) -> TuningRecord | None:
        top = self.top_k(workload_key, device, toolchain, 1)
        return top[0] if top else None

    @_guarded
    def records(self, workload_key: str | None = None, device: Device | None = None,
                toolchain: Mapping[str, str] | None = None) -> list[TuningRecord]:
        where, args = [], []
        if workload_key is not None:
            where.append("workload_key=?")
            args.append(workload_key)
        if device is not None:
            where.append("device_key=?")
            args.append(device.key)
        if toolchain is not None:
            where.append("toolchain_key=?")
            args.append(toolchain_key(toolchain))
        sql = f"SELECT {self._COLUMNS} FROM records" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [self._row(r) for r in self.conn.execute(sql, args).fetchall()]

    @_guarded
    def measured_keys(self, workload_key: str, device: Device, toolchain: Mapping[str, str]) -> set[str]:
        """knobs keys already measured (successfully or not): never measured again."""
        rows = self.conn.execute(
            "SELECT knobs_key FROM records WHERE workload_key=? AND device_key=? AND toolchain_key=?",
            (workload_key, device.key, toolchain_key(toolchain)),
        ).fetchall()
        return {r[0] for r in rows}

    @_guarded
    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    @_guarded
    def stats(self) -> list[dict[str, Any]]:
        """One row per (workload, device, timing mode): cold-cache and hot-loop times are not comparable, so their
        best latencies are not mixed (timing: the toolchain's "timing" tag, "" where there is none)."""
        rows = self.conn.execute(
            "SELECT r.workload_key, COALESCE(w.name, ''), COALESCE(w.family, ''), r.device_key,"
            " CASE WHEN json_valid(r.toolchain) THEN COALESCE(json_extract(r.toolchain, '$.timing'), '') ELSE '' END"
            " AS timing, COUNT(*),"
            " SUM(r.error IS NOT NULL), MIN(r.latency_us), COALESCE(w.flops, 0) FROM records r"
            " LEFT JOIN workloads w ON w.key = r.workload_key GROUP BY r.workload_key, r.device_key, timing ORDER BY 2, 4, 5"
        ).fetchall()
        return [
            {"workload": r[0], "name": r[1], "family": r[2], "device": r[3], "timing": r[4], "records": r[5],
             "failed": r[6], "best_us": r[7], "gflops": (r[8] / (r[7] * 1e3)) if r[7] else None}
            for r in rows
        ]

    # -- exchange ------------------------------------------------------------------------------------------------
    @_guarded
    def export_jsonl(self, path: str | os.PathLike[str]) -> int:
        records = self.records()
        workloads = self.conn.execute("SELECT key, family, name, flops, source FROM workloads").fetchall()
        tmp = pathlib.Path(str(path) + ".tmp")
        with open(tmp, "w") as f:
            for key, family, name, flops, source in workloads:
                f.write(json.dumps({"format": "woodpecker-workload/1", "key": key, "family": family, "name": name,
                                    "flops": flops, "source": source}, sort_keys=True) + "\n")
            for r in records:
                f.write(r.dumps() + "\n")
            # the side-by-side verdicts: without them an imported database would apply every best unverified
            for row in self.conn.execute(f"SELECT {', '.join(_VERDICT_FIELDS)} FROM verdicts ORDER BY rowid"):
                f.write(json.dumps({"format": VERDICT_FORMAT, **dict(zip(_VERDICT_FIELDS, row))}, sort_keys=True)
                        + "\n")
        os.replace(tmp, path)
        return len(records)

    def import_jsonl(self, path: str | os.PathLike[str]) -> int:
        label = str(path)
        records, workloads, verdicts = [], [], []
        try:
            with open(path) as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        d = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise DatabaseError(f"{label}:{lineno}: not JSON ({err.msg})") from None
                    if d.get("format") == "woodpecker-workload/1":
                        workloads.append(d)
                        continue
                    if d.get("format") == VERDICT_FORMAT:
                        missing = [k for k in _VERDICT_FIELDS if k not in d]
                        if missing:
                            raise DatabaseError(f"{label}:{lineno}: a verdict without {', '.join(missing)}")
                        verdicts.append(tuple(d[k] for k in _VERDICT_FIELDS))
                        continue
                    try:
                        records.append(TuningRecord.from_json(d))
                    except DatabaseError as err:
                        raise DatabaseError(f"{label}:{lineno}: {err}") from None
        except OSError as err:
            raise DatabaseError(f"{label}: cannot read ({err.strerror})") from None
        for w in workloads:
            self.commit_workload(w["key"], w["family"], w["name"], w["flops"], w["source"])
        added = self.add(records)
        self._add_verdicts(verdicts)
        return added

    def _add_verdicts(self, rows: list[tuple]) -> None:
        """Verdict rows (in _VERDICT_FIELDS order) not already here: importing a file twice adds each once."""
        where = " AND ".join(f"{k}=?" for k in _VERDICT_FIELDS)
        with self._transaction() as c:
            for row in rows:
                if c.execute(f"SELECT 1 FROM verdicts WHERE {where} LIMIT 1", row).fetchone() is None:
                    c.execute("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


def open_database(db: str | os.PathLike[str] | RecordsDatabase | None) -> RecordsDatabase | None:
    if db is None or isinstance(db, RecordsDatabase):
        return db
    return RecordsDatabase(db)
