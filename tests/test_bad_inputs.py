"""Bad input through the command line: every case gives exactly one line `error: ...` naming the culprit (file,
node, field or value), exit status 1 and no traceback.

Complements tests/test_cli.py (missing and garbage model files, unknown `compile --target`, wrong input name, shape
and dtype, a truncated or non-zip .wpk) and tests/frontend/test_import_errors.py (the same failures through the
Python API): the cases here are the ones not covered there. Most run `woodpecker.cli.main()` in this process (a
subprocess would spend seconds importing TVM per case); the profile folder knob and a few model-file cases run as a
user runs them, in a subprocess.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from woodpecker.testing.models import tiny_cnn


def _cli(*args: str, cwd: pathlib.Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full.pop("WOODPECKER_DEBUG", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "woodpecker", *args], cwd=cwd, capture_output=True, text=True,
                          env=full, timeout=600)


@pytest.fixture
def incli(capsys, monkeypatch):
    """`woodpecker ARGS` in this process; returns a CompletedProcess-like result."""

    def run(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
        from woodpecker.cli import main

        capsys.readouterr()
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["woodpecker", *args])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def user_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The single `error:` line of a failed command (asserting the exit status and the absence of a traceback)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("bad_inputs")
    onnx.save(tiny_cnn(), d / "tiny.onnx")
    return d


@pytest.fixture(scope="module")
def artifact(work) -> pathlib.Path:
    import woodpecker

    woodpecker.compile(str(work / "tiny.onnx")).save(work / "tiny.wpk")
    return work / "tiny.wpk"


# ----------------------------------------------------------------------------------------------------------------
# model files


def test_truncated_model_file(work):
    data = (work / "tiny.onnx").read_bytes()
    (work / "cut.onnx").write_bytes(data[: len(data) // 3])
    user_error(_cli("compile", "cut.onnx", cwd=work), "cut.onnx", "not a readable ONNX model")


def test_empty_model_file(work):
    (work / "empty.onnx").write_bytes(b"")
    user_error(_cli("compile", "empty.onnx", cwd=work), "empty.onnx", "empty")


def test_missing_model_file_for_tune(work, incli):
    user_error(incli("tune", "nothere.onnx", "--trials", "4", "--db", "r.db", cwd=work), "nothere.onnx", "no such file")


def test_unsupported_op_names_op_and_node(work):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="head")], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), work / "hardmax.onnx")
    user_error(_cli("compile", "hardmax.onnx", cwd=work), "unsupported operator Hardmax", "'head'", "opset 13")


def test_unsupported_attribute_value(work, incli):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool1", kernel_shape=[2, 2], auto_pad="MIDDLE")
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 13)]), work / "auto_pad.onnx")
    user_error(incli("compile", "auto_pad.onnx", cwd=work), "MaxPool", "'pool1'", "auto_pad='MIDDLE'")


# ----------------------------------------------------------------------------------------------------------------
# targets and hardware profiles


def test_unknown_target_for_tune(work, incli):
    user_error(incli("tune", "tiny.onnx", "--target", "nope", "--trials", "4", "--db", "r.db", cwd=work),
               "unknown target 'nope'", "host")


PROFILE = """id = "host"
name = "test"
kind = "cpu"
target_class = "cpu"
measurement = "real"
aliases = ["cpu"]

[target]
kind = "llvm"
"""


@pytest.mark.parametrize("name, text, words", [
    ("syntax.toml", PROFILE.replace('[target]', '[target'), ["syntax.toml", "malformed"]),
    ("nofield.toml", PROFILE.replace('target_class = "cpu"\n', ""), ["nofield.toml", "missing field 'target_class'"]),
    ("kind.toml", PROFILE.replace('kind = "cpu"', 'kind = "toaster"'), ["kind.toml", "field 'kind'", "toaster"]),
    ("measure.toml", PROFILE.replace('"real"', '"guessed"'), ["measure.toml", "field 'measurement'"]),
    ("aliases.toml", PROFILE.replace('["cpu"]', '"cpu"'), ["aliases.toml", "field 'aliases'"]),
    ("target.toml", PROFILE.replace('[target]\nkind = "llvm"\n', 'target = "llvm"\n'), ["target.toml", "field 'target'"]),
    ("binary.toml", "\udcff", ["binary.toml", "malformed"]),
])
def test_malformed_hardware_profile(work, incli, tmp_path, name, text, words):
    from woodpecker import config

    (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    with config.override(profiles_dir=tmp_path):
        user_error(incli("compile", "tiny.onnx", "-o", "x.wpk", cwd=work), *words)


def test_profile_folder_knob_from_the_environment(work, tmp_path):
    """WOODPECKER_PROFILES_DIR points a real `woodpecker` process at another folder of profiles."""
    (tmp_path / "host.toml").write_text(PROFILE.replace('"real"', '"guessed"'))
    user_error(_cli("targets", cwd=work, env={"WOODPECKER_PROFILES_DIR": str(tmp_path)}), "host.toml", "measurement")
    user_error(_cli("targets", cwd=work, env={"WOODPECKER_PROFILES_DIR": str(tmp_path / "none")}), "no such folder")


def test_duplicate_profile_ids(work, incli, tmp_path):
    from woodpecker import config

    (tmp_path / "a.toml").write_text(PROFILE)
    (tmp_path / "b.toml").write_text(PROFILE.replace('aliases = ["cpu"]', "aliases = []"))
    with config.override(profiles_dir=tmp_path):
        user_error(incli("targets", cwd=work), "'host'", "a.toml", "b.toml", "twice")


# ----------------------------------------------------------------------------------------------------------------
# run-time inputs (name, shape and dtype are in test_cli.py)


def test_missing_input(work, artifact, incli):
    np.savez(work / "empty.npz")
    user_error(incli("run", artifact.name, "--inputs", "empty.npz", cwd=work), "missing input 'input'")


def test_corrupt_inputs_archive(work, artifact, incli):
    (work / "junk.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    user_error(incli("run", artifact.name, "--inputs", "junk.npz", cwd=work), "junk.npz", "cannot read inputs")


def test_pickled_inputs_are_refused(work, artifact, incli):
    """An .npz holding an object array is never unpickled: loading it would run code of the file's choosing."""
    np.savez(work / "evil.npz", input=np.array([{"a": 1}], dtype=object))
    user_error(incli("run", artifact.name, "--inputs", "evil.npz", cwd=work), "evil.npz", "cannot read inputs")


def test_input_of_another_kind(work, artifact, incli):
    np.savez(work / "bools.npz", input=np.zeros((1, 3, 16, 16), bool))
    user_error(incli("run", artifact.name, "--inputs", "bools.npz", cwd=work), "'input'", "bool", "float32")


# ----------------------------------------------------------------------------------------------------------------
# artifacts (a truncated or non-zip .wpk is in test_cli.py)


def _rewrite_wpk(src: pathlib.Path, dst: pathlib.Path, manifest_edit=None, drop=()) -> pathlib.Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            if info.filename == "manifest.json" and manifest_edit is not None:
                manifest = json.loads(data)
                manifest_edit(manifest)
                data = json.dumps(manifest).encode()
            zout.writestr(info.filename, data)
    return dst


def test_foreign_zip_as_artifact(work, incli):
    with zipfile.ZipFile(work / "photos.wpk", "w") as zf:
        zf.writestr("holiday.jpg", b"\xff\xd8\xff\xe0")
    user_error(incli("run", "photos.wpk", cwd=work), "photos.wpk", "not a woodpecker artifact", "no manifest.json")


def test_artifact_of_another_tool(work, artifact, incli):
    _rewrite_wpk(artifact, work / "other.wpk", manifest_edit=lambda m: m.update(format="acme-model"))
    user_error(incli("run", "other.wpk", cwd=work), "other.wpk", "not a woodpecker artifact", "'acme-model'")


def test_artifact_of_a_future_version(work, artifact, incli):
    _rewrite_wpk(artifact, work / "future.wpk", manifest_edit=lambda m: m.update(version=99))
    user_error(incli("run", "future.wpk", cwd=work), "future.wpk", "version 99", "recompile")


def test_artifact_with_a_modified_library(work, artifact, incli):
    with zipfile.ZipFile(artifact) as zin, zipfile.ZipFile(work / "tampered.wpk", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "kernels.so":
                data = data[:-64] + b"\x90" * 64
            zout.writestr(info.filename, data)
    user_error(incli("run", "tampered.wpk", cwd=work), "tampered.wpk", "kernels.so", "hash")


# ----------------------------------------------------------------------------------------------------------------
# records databases: db stats, compile --db, tune --db


def _make_db(kind: str, path: pathlib.Path) -> None:
    from woodpecker.testing.fakes import FakeMeasurer
    from woodpecker.tuner import tune

    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return
    if kind == "other-sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE photos (name TEXT)")
        conn.commit()
        conn.close()
        return
    tune(tiny_cnn(), trials=60, db=str(path), measurer=FakeMeasurer(), early_stop=0)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")  # one file, so that the damage below is in the database itself
    if kind == "schema-99":
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    elif kind == "schema-garbage":
        conn.execute("UPDATE meta SET value='one' WHERE key='schema_version'")
    elif kind == "bad-record":
        conn.execute("UPDATE records SET knobs='{not json', device='[]'")
    conn.commit()
    conn.close()
    if kind == "damaged-pages":
        # a valid header and schema, damaged record pages: SQLite notices only when a query reads them
        data = bytearray(path.read_bytes())
        page = int.from_bytes(data[16:18], "big")
        for i in range(page * 6, len(data)):
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))


DB_CASES = {
    "random-bytes": ["not a woodpecker records database"],
    "other-sqlite": ["not a woodpecker records database"],
    "schema-99": ["schema version 99", "not supported"],
    "schema-garbage": ["schema version 'one'"],
    "damaged-pages": ["corrupt"],
    "bad-record": ["cannot be read"],
}
COMMANDS = {
    "db stats": lambda db: ["db", "stats", db],
    "compile --db": lambda db: ["compile", "tiny.onnx", "--db", db, "-o", "x.wpk"],
    "tune --db": lambda db: ["tune", "tiny.onnx", "--db", db, "--trials", "4"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(DB_CASES))
def test_bad_records_database(work, incli, kind, command):
    db = work / f"{kind}.db"
    if not db.exists():
        _make_db(kind, db)
    if kind == "bad-record" and command == "db stats":
        # stats reads counts and latencies, not the damaged columns: it works, and says how many there are
        proc = incli(*COMMANDS[command](db.name), cwd=work)
        assert proc.returncode == 0 and "records" in proc.stdout, proc.stderr
        return
    user_error(incli(*COMMANDS[command](db.name), cwd=work), db.name, *DB_CASES[kind])


# ----------------------------------------------------------------------------------------------------------------
# budgets


@pytest.mark.parametrize("args, words", [
    (["--trials", "0"], ["trials must be a positive integer", "0"]),
    (["--trials", "-5"], ["trials must be a positive integer", "-5"]),
    (["--budget", "banana"], ["budget 'banana' is not a duration"]),
    (["--budget", "0"], ["time budget must be a positive number", "0"]),
    (["--budget", "-3m"], ["budget '-3m' is not a duration"]),
    (["--budget", "inf"], ["time budget must be a positive number", "inf"]),
    (["--budget", "nan"], ["time budget must be a positive number", "nan"]),
    ([], ["give a trial count", "--budget"]),
    (["--trials", "8", "--batch", "0"], ["batch size must be at least 1"]),
])
def test_nonsensical_budgets(work, incli, args, words):
    user_error(incli("tune", "tiny.onnx", "--db", "budget.db", *args, cwd=work), *words)
    assert not (work / "budget.db").exists(), "a refused budget must not create the database"


def test_compile_with_zero_trials(work, incli):
    user_error(incli("compile", "tiny.onnx", "--trials", "0", "-o", "x.wpk", cwd=work), "trials must be a positive integer")

