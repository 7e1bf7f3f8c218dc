"""`woodpecker compile` shows its stages on a terminal and stays quiet when piped or with --quiet; the summary
says what shipped and against what.

The terminal case runs the command under a pseudo-terminal (pty), as a user's shell would."""

from __future__ import annotations

import os
import pathlib
import pty
import subprocess
import sys

MODEL = "zoo:resnet18?image_size=32"
STAGES = ("importing the model", "optimizing", "building")


def _env() -> dict[str, str]:
    env = dict(os.environ, COLUMNS="200", TERM="xterm")
    env.pop("WOODPECKER_DEBUG", None)
    return env


def _run_on_a_terminal(args: list[str], cwd: pathlib.Path, timeout_s: float = 600) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; everything it printed, and its exit status."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "woodpecker", *args], cwd=cwd, env=_env(),
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=timeout_s), b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal(tmp_path):
    code, out = _run_on_a_terminal(["compile", MODEL, "--no-vendor", "-o", "t.wpk"], tmp_path)
    assert code == 0, out
    for stage in STAGES:
        assert stage in out, out
    assert "compiled resnet18 for host" in out


def test_no_progress_when_piped_or_quiet(tmp_path):
    piped = subprocess.run([sys.executable, "-m", "woodpecker", "compile", MODEL, "--no-vendor", "-o", "p.wpk"],
                           cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert piped.returncode == 0, piped.stderr
    assert not any(stage in piped.stderr + piped.stdout for stage in STAGES)
    assert "compiled resnet18 for host" in piped.stdout
    code, out = _run_on_a_terminal(["compile", MODEL, "--no-vendor", "--quiet", "-o", "q.wpk"], tmp_path)
    assert code == 0 and not any(stage in out for stage in STAGES), out


def test_the_summary_says_what_shipped_against_onnxruntime(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "woodpecker", "compile", MODEL, "-o", "v.wpk"], cwd=tmp_path,
                          env=dict(_env(), WOODPECKER_VENDOR="1", WOODPECKER_PLAN_PROCESSES="2"),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    shipping = next(line for line in lines if line.startswith("shipping "))
    # against onnxruntime, or against woodpecker's kernels when onnxruntime itself ships
    assert " ms (" in shipping and ("vs onnxruntime" in shipping or "vs woodpecker's kernels" in shipping)
    assert "x, " in shipping
    assert ("within noise" in shipping) or ("beyond the spread" in shipping)
    assert any(line.startswith("per call: ") for line in lines)


def test_the_python_api_is_silent_unless_asked(capfd):
    import woodpecker
    from woodpecker.testing.models import tiny_cnn

    woodpecker.compile(tiny_cnn(), vendor=False)
    assert capfd.readouterr().err == ""
    seen = []
    woodpecker.compile(tiny_cnn(), vendor=False, progress=seen.append)
    assert any(m.startswith("building") for m in seen)
