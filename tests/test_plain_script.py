"""The README's Python snippet saved as a plain script, without an `if __name__ == "__main__":` guard.

Regression: the planner's timing workers and the tuner's measurement workers were started with multiprocessing's
"spawn", which imports the parent's __main__ again; an unguarded script then re-ran itself in every worker, each
child died in multiprocessing's bootstrapping check, and the parent waited for 15 minutes. Now the workers are
fresh interpreters that never import the user's script: the script must finish in bounded time, print the right
numbers once, and run its top level exactly once (the marker file counts the runs).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import pathlib, sys
    import numpy as np
    import onnxruntime as ort
    import woodpecker
    from woodpecker import models

    with open(sys.argv[1], "a") as marker:     # counts how often this top level runs
        marker.write("run\\n")
    proto = models.build("squeezenet", image_size=32, num_classes=10)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    cm = woodpecker.compile(proto, target="host", trials=4, db=sys.argv[2])  # tunes, then plans (vendor on)
    out = cm.run({"input": x})
    ref = ort.InferenceSession(proto.SerializeToString()).run(None, {"input": x})[0]
    err = float(np.max(np.abs(out[cm.outputs[0].name] - ref)))
    print("MAXERR", err)
    print("SHIPPED", cm.metadata["plan"]["model"]["chosen"])
    """
)


def test_unguarded_script_finishes_once_with_the_right_output(tmp_path: pathlib.Path):
    script = tmp_path / "snippet.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "runs.txt"
    env = dict(os.environ, WOODPECKER_VENDOR="1")  # the planner's isolated timing is what hung
    proc = subprocess.run([sys.executable, str(script), str(marker), str(tmp_path / "t.db")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker.read_text().count("run") == 1, "a worker re-ran the user's script"
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("MAXERR", "SHIPPED")))
    assert float(lines["MAXERR"]) < 1e-3
    assert lines["SHIPPED"] in ("woodpecker", "planned", "onnxruntime")
    assert "bootstrapping phase" not in proc.stderr
