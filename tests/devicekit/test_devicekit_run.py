"""The device runner's argument handling and JSON, in this process (the CPU parts)."""

from __future__ import annotations

import json

import pytest

from woodpecker.devicekit import run


def test_unknown_part_is_a_usage_error(small_kit, tmp_path, capsys):
    kit, _ = small_kit
    with pytest.raises(SystemExit) as exc:
        run.parse_args([str(kit), str(tmp_path), "--parts", "artifacts,bogus"])
    assert exc.value.code == 2 and "unknown part 'bogus'" in capsys.readouterr().err


def test_a_folder_without_kit_json_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run.parse_args([str(tmp_path), str(tmp_path / "out")])
    assert "not a kit (no kit.json)" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--repeat", "0"], ["--budget-s", "-1"]])
def test_non_positive_numbers_are_refused(small_kit, tmp_path, flag):
    kit, _ = small_kit
    with pytest.raises(SystemExit):
        run.parse_args([str(kit), str(tmp_path), *flag])


def test_a_kit_of_another_version_is_refused(small_kit, tmp_path, capsys):
    import shutil

    kit, _ = small_kit
    other = tmp_path / "kit"
    shutil.copytree(kit, other)
    data = json.loads((other / "kit.json").read_text())
    (other / "kit.json").write_text(json.dumps({**data, "version": 999}))
    assert run.main([str(other), str(tmp_path / "out")]) == 2
    assert "not a woodpecker-devicekit version 1" in capsys.readouterr().err


def test_artifacts_part_writes_checked_results(small_kit, tmp_path):
    kit, _ = small_kit
    assert run.main([str(kit), str(tmp_path), "--parts", "artifacts", "--repeat", "1"]) == 0
    arts = json.loads((tmp_path / "artifacts.json").read_text())
    host = next(a for a in arts if a["backend"] == "host")
    assert host["ok"] and host["timings"]["woodpecker"]["median_s"] > 0
    assert "median_s" in host["timings"]["onnxruntime_cpu"]  # onnxruntime is installed here
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["parts"]) == ["artifacts"] and summary["ok"]


def test_time_budget_spent_skips_instead_of_overrunning(small_kit, tmp_path):
    kit, kit_json = small_kit
    r = run.Run(kit, tmp_path, budget_s=1.0, repeat=1)
    r.deadline = 0.0  # already past
    out = run.run_artifacts(r, kit_json)
    assert [a["skipped"] for a in out] == ["time budget spent"] * len(kit_json["artifacts"])
