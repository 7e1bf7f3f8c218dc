"""A tuning process killed with SIGKILL loses no committed record, leaves no worker behind, and a rerun resumes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import onnx

from woodpecker.testing.models import tiny_cnn


def _count(db) -> int:
    if not os.path.exists(db):
        return 0
    try:
        conn = sqlite3.connect(db, timeout=10)
        try:
            return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0


def _knob_keys(db) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT workload_key || ':' || knobs_key FROM records")]
    finally:
        conn.close()


def _tune(model, db, trials):
    cmd = [sys.executable, "-m", "woodpecker", "tune", str(model), "--db", str(db), "--trials", str(trials),
           "--batch", "4", "--early-stop", "0"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _group_gone(pgid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_sigkill_mid_session_loses_nothing_and_resumes(tmp_path):
    model = tmp_path / "tiny.onnx"
    onnx.save(tiny_cnn(), model)
    db = tmp_path / "records.db"
    rng = random.Random(0)
    seen: list[str] = []
    for round_ in range(3):
        proc = _tune(model, db, trials=200)
        start = _count(db)
        deadline = time.monotonic() + 120
        while _count(db) < start + 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 2.0))  # kill at a random point of a batch
        committed = _count(db)
        assert proc.poll() is None, f"round {round_}: tune ended early: {proc.stderr.read().decode()[-500:]}"
        proc.send_signal(signal.SIGKILL)  # the main process only: its workers must notice and exit by themselves
        proc.wait()
        assert _group_gone(proc.pid), "worker processes outlived the killed tuning process"
        after = _count(db)
        assert after >= committed >= start + 4, "a committed record was lost"
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        keys = _knob_keys(db)
        assert len(keys) == len(set(keys))
        assert set(seen) <= set(keys)
        seen = keys
    # a clean rerun continues: it measures only new candidates
    before = _count(db)
    proc = _tune(model, db, trials=8)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-800:]
    keys = _knob_keys(db)
    assert _count(db) == before + 8 and len(keys) == len(set(keys))
