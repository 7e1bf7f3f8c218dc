"""Records database: round trips, reload, ordering, identity matching, schema and corruption checks."""

from __future__ import annotations

import json
import sqlite3

import pytest

from woodpecker.errors import DatabaseError
from woodpecker.records.db import SCHEMA_VERSION, RecordsDatabase
from woodpecker.records.schema import Device, TuningRecord

DEV = Device("host", "abc", "znver3/2t", False)
SIM = Device("p100", "def", "", True)
TOOLS = {"woodpecker": "0.1.0", "tvm": "0.27.0", "schedules": "1"}


def rec(knobs, secs, error=None, device=DEV, tools=TOOLS, workload="w1"):
    return TuningRecord(workload, device, tools, knobs, tuple(secs), error, "ga", "2026-01-01T00:00:00+00:00", "s1")


def test_round_trip_and_reload(tmp_db):
    with RecordsDatabase(tmp_db) as db:
        assert db.add([rec({"t": 1}, [3e-3, 2e-3, 4e-3]), rec({"t": 2}, [1e-3]), rec({"t": 3}, [], "wrong result")]) == 3
    with RecordsDatabase(tmp_db) as db:  # reopened from disk
        all_ = db.records("w1", DEV, TOOLS)
        assert [r.knobs for r in all_] == [{"t": 1}, {"t": 2}, {"t": 3}]
        assert all_[0].run_secs == (3e-3, 2e-3, 4e-3)  # every repeat is kept, not only the median
        assert all_[0].latency_us == pytest.approx(3000.0)
        assert all_[2].error == "wrong result" and not all_[2].ok


def test_top_k_orders_by_latency_and_skips_failures(tmp_db):
    with RecordsDatabase(tmp_db) as db:
        db.add([rec({"t": i}, [s]) for i, s in enumerate([5e-3, 1e-3, 3e-3])] + [rec({"t": 9}, [], "crash")])
        top = db.top_k("w1", DEV, TOOLS, 5)
        assert [r.knobs["t"] for r in top] == [1, 2, 0]
        assert db.best("w1", DEV, TOOLS).knobs == {"t": 1}


def test_lookups_match_device_and_toolchain(tmp_db):
    with RecordsDatabase(tmp_db) as db:
        db.add([rec({"t": 1}, [1e-3], device=SIM), rec({"t": 2}, [2e-3], tools={**TOOLS, "tvm": "0.26"})])
        assert db.best("w1", DEV, TOOLS) is None  # simulated records never stand in for real ones
        assert db.best("w1", SIM, TOOLS).knobs == {"t": 1}
        assert db.best("w1", DEV, {**TOOLS, "tvm": "0.26"}).knobs == {"t": 2}


def test_duplicate_records_are_kept_once(tmp_db):
    with RecordsDatabase(tmp_db) as db:
        assert db.add([rec({"t": 1}, [1e-3])]) == 1
        assert db.add([rec({"t": 1}, [9e-3])]) == 0
        assert db.count() == 1
        assert db.measured_keys("w1", DEV, TOOLS) and len(db.measured_keys("w1", DEV, TOOLS)) == 1


def test_jsonl_export_import(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with RecordsDatabase(a) as db:
        db.commit_workload("w1", "conv2d_nchwc", "conv", 1000, "kernel conv() -> Y {}")
        db.add([rec({"t": 1}, [1e-3]), rec({"t": 2}, [], "timeout")])
        assert db.export_jsonl(tmp_path / "r.jsonl") == 2
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["format"] == "woodpecker-workload/1"
    with RecordsDatabase(b) as db:
        assert db.import_jsonl(tmp_path / "r.jsonl") == 2
        assert db.import_jsonl(tmp_path / "r.jsonl") == 0  # importing twice adds nothing
        assert db.best("w1", DEV, TOOLS).knobs == {"t": 1}
        assert db.stats()[0]["name"] == "conv"


def test_jsonl_export_import_carries_the_verdicts(tmp_path):
    """A tuned best's side-by-side verdict travels with it: an imported best below the threshold stays unapplied."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with RecordsDatabase(a) as db:
        db.add([rec({"t": 1}, [1e-3]), rec({"t": 2}, [2e-3])])
        db.add_verdict("w1", DEV, TOOLS, {"t": 1}, 0.97, 3, "s1", "2026-01-01T00:00:00+00:00")
        db.add_verdict("w1", DEV, TOOLS, {"t": 2}, 1.30, 3, "s1", "2026-01-01T00:00:01+00:00")
        db.export_jsonl(tmp_path / "r.jsonl")
    with RecordsDatabase(b) as db:
        assert db.import_jsonl(tmp_path / "r.jsonl") == 2
        db.import_jsonl(tmp_path / "r.jsonl")  # twice: each verdict once
        assert db.verdict("w1", DEV, TOOLS, {"t": 1}) == pytest.approx(0.97)
        assert db.verdict("w1", DEV, TOOLS, {"t": 2}) == pytest.approx(1.30)
        assert db.conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"format": "woodpecker-verdict/1", "workload_key": "w1"}) + "\n")
    with RecordsDatabase(b) as db, pytest.raises(DatabaseError, match="bad.jsonl:1: a verdict without device_key"):
        db.import_jsonl(bad)


def test_stats_keep_cold_cache_and_hot_loop_records_apart(tmp_db):
    with RecordsDatabase(tmp_db) as db:
        db.commit_workload("w1", "conv2d_nchwc", "conv", 1000, "kernel conv() -> Y {}")
        db.add([rec({"t": 1}, [1e-3]), rec({"t": 1}, [3e-3], tools={**TOOLS, "timing": "cold-cache"}),
                rec({"t": 2}, [4e-3], tools={**TOOLS, "timing": "cold-cache"})])
        rows = {r["timing"]: r for r in db.stats()}
    assert set(rows) == {"", "cold-cache"}
    assert rows[""]["records"] == 1 and rows[""]["best_us"] == 1000.0
    assert rows["cold-cache"]["records"] == 2 and rows["cold-cache"]["best_us"] == 3000.0


def test_unknown_schema_version_is_refused(tmp_db):
    RecordsDatabase(tmp_db).close()
    conn = sqlite3.connect(tmp_db)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="schema version"):
        RecordsDatabase(tmp_db)


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DatabaseError, match="garbage.db"):
        RecordsDatabase(garbage)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE stuff (x)")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="not a woodpecker records database"):
        RecordsDatabase(foreign)


def test_malformed_jsonl_names_the_line(tmp_path, tmp_db):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(rec({"t": 1}, [1e-3]).dumps() + "\n{not json\n")
    with RecordsDatabase(tmp_db) as db:
        with pytest.raises(DatabaseError, match="bad.jsonl:2"):
            db.import_jsonl(bad)
        assert db.count() == 0  # nothing half-imported
