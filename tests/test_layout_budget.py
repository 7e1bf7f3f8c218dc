"""Module size budget: a module over 400 lines is listed (a hint to look for a seam), and none may pass 800 lines
unless it is a table of ops (one entry per operator, nothing to split along), named below with its reason."""

from __future__ import annotations

import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "woodpecker"
LISTED_LINES = 400
MAX_LINES = 800

# module (relative to the package) -> why it may pass MAX_LINES
ALLOWED_OVER_MAX = {
    "frontend/onnx_ops.py": "a table of ops: one converter per ONNX operator",
}


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_passes_the_line_budget(capsys):
    counts = _line_counts()
    listed = sorted(((n, m) for m, n in counts.items() if n > LISTED_LINES), reverse=True)
    with capsys.disabled():  # informational: the modules to watch, seen with `pytest -s` or not
        print(f"\nmodules over {LISTED_LINES} lines: " + ", ".join(f"{m} ({n})" for n, m in listed))
    over = {m: n for m, n in counts.items() if n > MAX_LINES and m not in ALLOWED_OVER_MAX}
    assert not over, f"modules over {MAX_LINES} lines (split them along a seam): {over}"


def test_the_allow_list_names_only_modules_that_need_it():
    counts = _line_counts()
    stale = {m: counts.get(m) for m in ALLOWED_OVER_MAX if counts.get(m, 0) <= MAX_LINES}
    assert not stale, f"allowed over {MAX_LINES} lines but missing or no longer over: drop them from the list {stale}"
