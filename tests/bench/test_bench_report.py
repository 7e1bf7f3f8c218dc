"""`woodpecker bench` reports: JSON, PNG and a self-contained HTML page that renders in a headless browser."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

from woodpecker.bench.report import run_bench, write_outputs
from woodpecker.testing.models import tiny_cnn


def test_report_files_and_html_screenshot(tmp_path):
    report = run_bench(tiny_cnn(), baselines=("onnxruntime", "torch"), rounds=2, per_round=2, vendor=False)
    names = [c["name"] for c in report["contenders"]]
    assert names[0] == "woodpecker" and "onnxruntime" in names and "torch" in names
    assert all(c["median_ms"] and c["median_ms"] > 0 for c in report["contenders"]), report["contenders"]
    assert report["operators"]["woodpecker"] and report["peak"]["gflops"] > 0
    paths = write_outputs(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["model"] == "tiny_cnn"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and "<table>" in page and "src=\"http" not in page  # self-contained
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the HTML report test needs Debian's chromium (installed by .ci/run)"
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
                    f"--screenshot={shot}", "--window-size=1000,800", paths["html"].as_uri()],
                   check=True, capture_output=True, timeout=120)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, "the page rendered (not a blank screenshot)"
    _not_blank(shot)


def _not_blank(path: pathlib.Path) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.std() > 0.05, "the screenshot is (nearly) uniform: the report did not render"
