"""Targets end to end: RISC-V/MCU models compile, run under qemu, match the host, save/load and tune (simulated
records are labelled and never stand in for real ones)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import woodpecker
from woodpecker.records.db import RecordsDatabase
from woodpecker.targets import resolve
from woodpecker.testing.models import tiny_cnn


@pytest.mark.parametrize("target", ["rv64gcv128", "rv32imf"])
def test_riscv_model_runs_under_qemu_and_matches_host(target, tmp_path):
    proto = tiny_cnn(image_size=12, channels=8)
    cm = woodpecker.compile(proto, target=target)
    assert cm.backend == "riscv"
    feed = cm.random_inputs()
    out = cm.run(feed)
    ref = ort.InferenceSession(proto.SerializeToString()).run(None, feed)[0]
    got = out[cm.outputs[0].name]
    assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) < 1e-4
    assert cm.last_run.cycles > 0 and cm.last_run.seconds > 0
    assert cm.benchmark(feed)["simulated"] is True
    path = tmp_path / "m.wpk"
    cm.save(path)
    again = woodpecker.load(path)
    assert again.backend == "riscv" and again.metadata["target"]["measurement"] == "simulated"
    assert np.array_equal(again.run(feed)[cm.outputs[0].name], got)
    import zipfile

    names = zipfile.ZipFile(path).namelist()
    assert "riscv/model.c" in names and "riscv/model.h" in names and any(n.endswith(".o") for n in names)


def test_riscv_tuning_records_are_simulated_and_applied(tmp_path):
    db = tmp_path / "rv.db"
    report = woodpecker.tune(tiny_cnn(image_size=12, channels=8), "rv64gc", trials=14, db=str(db), early_stop=0)
    assert report.trials == 14 and report.device.simulated and report.device.profile == "rv64gc"
    with RecordsDatabase(db) as records:
        recs = records.records()
        assert recs and all(r.device.simulated for r in recs)
        host = resolve("host").device()
        assert all(records.best(r.workload_key, host, r.toolchain) is None for r in recs)
    cm = woodpecker.compile(tiny_cnn(image_size=12, channels=8), target="rv64gc", db=str(db))
    assert cm.backend == "riscv"


def test_target_classes_resolve():
    assert resolve("host").target_class == "cpu" and not resolve("host").simulated
    assert resolve("u74").profile.id == "rv64gc" and resolve("rv64gc").simulated
    assert resolve("esp32c3").target_class == "mcu"
    assert not resolve("p100").pass_options().blocked_layout
