"""The resumable campaign state of scripts/fuzz.py (woodpecker.testing.fuzz_state): results appended as they come,
done seeds skipped on a rerun, a line cut short by a kill ignored, failures rechecked and counted as fixed."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from woodpecker.testing.fuzz_state import CampaignState

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_state_resumes_and_counts_fixes(tmp_path):
    path = tmp_path / "state.jsonl"
    state = CampaignState.load(path)
    state.record(0, "ok", "", [], 0.1, generator="g")
    state.record(1, "mismatch", "output o: max relative error 0.5 > 0.001", ["Add"], 0.2, generator="g")
    state.record(2, "crash", "IndexError", ["ReduceSum"], 0.3, generator="g")
    state.record(3, "invalid", "onnxruntime: refused", ["Pad"], 0.1, generator="g")
    with path.open("a") as f:
        f.write('{"seed": 4, "status": "o')  # killed in the middle of a line
    again = CampaignState.load(path)
    assert again.todo(range(6)) == [4, 5]
    assert again.failing() == [1, 2] and again.failing(invalid=True) == [1, 2, 3]
    again.record(2, "ok", "", [], 0.3, recheck=True, generator="g")  # fixed since
    again.record(1, "mismatch", "still", ["Add"], 0.2, recheck=True, generator="g")
    summary = CampaignState.load(path).summary(range(6))
    assert {k: summary[k] for k in ("graphs", "ok", "mismatches_found", "crashes_found", "fixed", "remaining",
                                    "invalid", "planned", "seeds_left")} == {
        "graphs": 4, "ok": 1, "mismatches_found": 1, "crashes_found": 1, "fixed": 1, "remaining": 1, "invalid": 1,
        "planned": 6, "seeds_left": 2}
    assert summary["failing_seeds"] == [1] and summary["fixed_seeds"] == [2]
    assert summary["seconds"] == 0.7  # the campaign records only, not the rechecks


def test_script_runs_only_the_seeds_left(tmp_path):
    state, out = tmp_path / "state.jsonl", tmp_path / "summary"
    state.write_text('{"seed": 0, "status": "ok", "wall_s": 0.1, "generator": "old", "recheck": false}\n'
                     '{"seed": 1, "status": "ok", "wall_s": 0.1, "gener')
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--count", "3", "--workers", "1",
                          "--max-nodes", "4", "--state", str(state), "--summary", str(out), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    seeds = [json.loads(line)["seed"] for line in state.read_text().splitlines()[2:]]
    assert seeds == [1, 2]  # seed 0 was done; seed 1's line was cut short, so it ran again
    summary = json.loads((out / "summary.json").read_text())
    assert summary["graphs"] == 3 and summary["seeds_left"] == 0
    assert "| 3 |" in (out / "README.md").read_text()
