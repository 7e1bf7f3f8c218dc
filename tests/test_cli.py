"""The command line: the commands work, and every user error is exactly one `error: ...` line on stderr with a
non-zero exit status and no traceback.

Most cases run as a user runs them (`python -m woodpecker ...` in a subprocess). Those that load a compiled model
call the same entry point, `woodpecker.cli.main`, in this process: a subprocess would spend seconds importing TVM
for each of them."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

MODEL = "zoo:resnet18?image_size=32"


def cli(*args: str, cwd: pathlib.Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("WOODPECKER_DEBUG", None)
    env["COLUMNS"] = "200"  # rich wraps tables to the terminal width
    return subprocess.run([sys.executable, "-m", "woodpecker", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


class InProcess:
    """`main()` with the given arguments, in this process; the result looks like a CompletedProcess."""

    def __init__(self, capsys, monkeypatch):
        self.capsys, self.monkeypatch = capsys, monkeypatch

    def __call__(self, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
        from woodpecker.cli import main

        self.capsys.readouterr()
        self.monkeypatch.chdir(cwd)
        self.monkeypatch.setattr(sys, "argv", ["woodpecker", *args])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = self.capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture
def incli(capsys, monkeypatch) -> InProcess:
    return InProcess(capsys, monkeypatch)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def artifact(workdir) -> pathlib.Path:
    proc = cli("compile", MODEL, "-o", "x.wpk", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "compiled resnet18 for host" in proc.stdout and "-> x.wpk" in proc.stdout
    path = workdir / "x.wpk"
    assert path.is_file()
    return path


def test_targets(workdir):
    proc = cli("targets", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "host" in proc.stdout and "real timing on this machine" in proc.stdout


def test_zoo_list_and_export(workdir):
    from woodpecker import models

    proc = cli("zoo", cwd=workdir)
    assert proc.returncode == 0
    assert proc.stdout.split() == list(models.ZOO)
    proc = cli("zoo", "squeezenet", "--image-size", "32", "-o", "sq.onnx", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    import onnx

    m = onnx.load(str(workdir / "sq.onnx"))
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 32]


def test_run_with_timing(artifact):
    proc = cli("run", artifact.name, "--repeat", "3", "--print-time", cwd=artifact.parent)
    assert proc.returncode == 0, proc.stderr
    assert "float32[1, 1000]" in proc.stdout
    assert "latency over 3 runs: median" in proc.stdout


def test_run_inputs_and_outputs_round_trip(artifact, incli):
    import woodpecker

    cm = woodpecker.load(artifact)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.savez(artifact.parent / "in.npz", input=x)
    proc = incli("run", artifact.name, "--inputs", "in.npz", "--output", "out.npz", cwd=artifact.parent)
    assert proc.returncode == 0, proc.stderr
    with np.load(artifact.parent / "out.npz", allow_pickle=False) as npz:
        got = {k: npz[k] for k in npz.files}
    expected = cm.run({"input": x})
    assert list(got) == list(expected)
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k])


def test_lower(workdir, incli):
    proc = incli("lower", MODEL, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "fn relu(x) = max(x, 0.0)" in out
    assert "@family(conv2d_nchwc)" in out and "kernel fused_conv2d_nchwc" in out
    # every kernel printed parses as DSL
    from woodpecker.dsl.parser import parse

    chunks = [c for c in out.split("# ") if c.strip()]
    assert len(chunks) >= 10
    for chunk in chunks:
        parse(chunk.split("\n", 1)[1])
    plain = incli("lower", MODEL, "--no-layout", cwd=workdir)
    assert plain.returncode == 0 and "conv2d_nchwc" not in plain.stdout and "@family(conv2d)" in plain.stdout


# ----------------------------------------------------------------------------------------------------------------
# errors


def test_missing_model_file(workdir):
    assert_user_error(cli("compile", "missing.onnx", cwd=workdir), "missing.onnx", "no such file")
    assert_user_error(cli("lower", "missing.onnx", cwd=workdir), "missing.onnx")


def test_not_an_onnx_file(workdir):
    (workdir / "garbage.onnx").write_bytes(b"\x00\xff" * 50)
    assert_user_error(cli("compile", "garbage.onnx", cwd=workdir), "garbage.onnx")


def test_unknown_target(workdir):
    assert_user_error(cli("compile", MODEL, "--target", "nope", cwd=workdir), "unknown target 'nope'", "host")


@pytest.mark.parametrize("shape, words", [
    ("input", "expected NAME=D1,D2"),
    ("input=1,3,x,32", "dimensions must be integers"),
    ("nosuch=1,3,32,32", "nosuch"),
    ("input=1,3,32", "rank"),
])
def test_bad_input_shape(workdir, shape, words):
    assert_user_error(cli("compile", MODEL, "--input-shape", shape, cwd=workdir), words)


def test_corrupt_artifact(workdir, artifact):
    bad = workdir / "bad.wpk"
    bad.write_bytes(b"not a zip")
    assert_user_error(cli("run", "bad.wpk", cwd=workdir), "bad.wpk", "not a woodpecker artifact")
    data = artifact.read_bytes()
    (workdir / "cut.wpk").write_bytes(data[: len(data) // 2])
    assert_user_error(cli("run", "cut.wpk", cwd=workdir), "cut.wpk")
    assert_user_error(cli("run", "none.wpk", cwd=workdir), "none.wpk", "no such file")


def test_bad_run_inputs(workdir, artifact, incli):
    np.savez(workdir / "wrong.npz", image=np.zeros((1, 3, 32, 32), np.float32))
    assert_user_error(incli("run", artifact.name, "--inputs", "wrong.npz", cwd=workdir), "unknown input 'image'")
    np.savez(workdir / "shape.npz", input=np.zeros((1, 3, 8, 8), np.float32))
    assert_user_error(incli("run", artifact.name, "--inputs", "shape.npz", cwd=workdir), "'input'", "[1, 3, 8, 8]")
    np.savez(workdir / "dtype.npz", input=np.zeros((1, 3, 32, 32), np.int32))
    assert_user_error(incli("run", artifact.name, "--inputs", "dtype.npz", cwd=workdir), "'input'", "int32")
    np.save(workdir / "plain.npy", np.zeros(3))
    assert_user_error(incli("run", artifact.name, "--inputs", "plain.npy", cwd=workdir), "plain.npy")
    assert_user_error(incli("run", artifact.name, "--inputs", "nothere.npz", cwd=workdir), "nothere.npz")


def test_unwritable_outputs(workdir, artifact, incli):
    assert_user_error(incli("run", artifact.name, "--output", "no/such/dir/o.npz", cwd=workdir), "o.npz")
    assert_user_error(cli("zoo", "resnet18", "-o", "no/such/dir/r.onnx", cwd=workdir), "r.onnx")
    assert_user_error(cli("compile", "zoo:squeezenet?image_size=32", "-o", "no/dir/s.wpk", cwd=workdir), "s.wpk")


def test_internal_errors_are_reported_as_bugs(workdir, incli, monkeypatch):
    import woodpecker

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(woodpecker, "load", broken)
    proc = incli("run", "x.wpk", cwd=workdir)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: RuntimeError: boom")


@pytest.mark.parametrize("spec, words", [
    ("zoo:nope", ["unknown zoo model 'nope'"]),
    ("zoo:resnet18?image_size=big", ["image_size", "'big'"]),
    ("zoo:resnet18?colour=1", ["no option 'colour'"]),
])
def test_bad_zoo_spec(workdir, spec, words):
    assert_user_error(cli("compile", spec, cwd=workdir), *words)


def test_usage_errors_are_reported_by_click(workdir):
    proc = cli("run", "x.wpk", "--repeat", "0", cwd=workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--repeat" in proc.stderr
    proc = cli("frobnicate", cwd=workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "No such command" in proc.stderr


def test_unknown_timing_mode_is_a_usage_error(workdir):
    proc = cli("tune", MODEL, "--timing", "warm", "--trials", "2", "--db", "timing.db", cwd=workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--timing" in proc.stderr
    assert "cold-cache" in proc.stderr and not (workdir / "timing.db").exists()


def test_debug_shows_the_traceback(workdir):
    proc = cli("--debug", "compile", "missing.onnx", cwd=workdir)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ModelLoadError" in proc.stderr


def test_gpu_compile_without_a_gpu_says_it_was_not_planned(incli, workdir):
    from woodpecker.measure.cuda import gpu_available

    if gpu_available():
        pytest.skip("a GPU is attached: the plan runs (tests/planner/test_device_planner.py)")
    proc = incli("compile", MODEL, "--target", "p100", "--vendor", "-o", "gpu.wpk", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "plan: none (no GPU attached" in " ".join(proc.stdout.split())


@pytest.mark.parametrize("timing, device, label", [
    ("cold-cache", "host:abc:znver5/2t:real", "cold-cache"),
    ("", "host:abc:znver5/2t:real", "hot-loop"),  # real CPU records from before the tag, or timed hot
    ("", "p100:abc::sim", "-"),  # one way of timing: nothing to tell apart
    ("", "rv64gc:abc::sim", "-"),
])
def test_db_stats_says_how_records_were_timed(timing, device, label):
    from woodpecker.cli import _timing_label

    assert _timing_label({"timing": timing, "device": device}) == label


def _piped(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """As `woodpecker ... | cat` runs: stdout is a pipe and COLUMNS is unset (rich would assume 80 columns)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "WOODPECKER_DEBUG")}
    return subprocess.run([sys.executable, "-m", "woodpecker", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_piped_tables_keep_whole_names(workdir):
    from woodpecker.hw.profile import list_profiles

    proc = _piped("targets", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    lines = proc.stdout.splitlines()
    for p in list_profiles():  # every profile's row carries its whole description and measurement
        row = next(line for line in lines if line.split()[0] == p.id)
        assert p.name in row, (p.name, row)
    assert max(len(line) for line in lines) > 80  # not fitted to an assumed 80-column terminal


def test_piped_db_stats_keeps_whole_kernel_names(workdir, tmp_db):
    from woodpecker.testing.fakes import FakeMeasurer
    from woodpecker.testing.models import tiny_cnn
    from woodpecker.tuner import tune

    report = tune(tiny_cnn(), trials=12, db=str(tmp_db), measurer=FakeMeasurer(), early_stop=0)
    proc = _piped("db", "stats", str(tmp_db), cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    for t in report.tasks:
        assert any(line.split()[0] == t.name for line in proc.stdout.splitlines()), (t.name, proc.stdout)


def test_help_shows_flags_as_flags_and_every_option_has_help(workdir):
    import typer.main

    from woodpecker.cli import app

    for args in (["--help"], ["tune", "--help"], ["bench", "--help"], ["run", "--help"]):
        proc = cli(*args, cwd=workdir)
        assert proc.returncode == 0 and "<bool>" not in proc.stdout, proc.stdout
    assert "--input-shape NAME=D1,D2,..." in cli("tune", "--help", cwd=workdir).stdout

    def undocumented(cmd, path):
        for p in cmd.params:
            if not getattr(p, "help", None):
                yield f"{path} {p.name}"
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from undocumented(sub, f"{path} {name}")

    assert not list(undocumented(typer.main.get_command(app), "woodpecker"))


def test_tune_says_how_many_trials_were_defaults(capsys):
    from woodpecker.cli import _print_tune_report
    from woodpecker.tuner import TuneReport

    _print_tune_report(TuneReport((), 60, 30.0, "budget", "t.db", None, defaults=28))
    out = capsys.readouterr().out
    assert "after 60 trials (28 defaults measured, 32 trials searched)" in out
    _print_tune_report(TuneReport((), 30, 30.0, "budget", "t.db", None, defaults=28))
    assert "the default schedules took 28 of the 30 trials" in capsys.readouterr().out
