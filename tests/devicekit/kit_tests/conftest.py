"""The kit's own pytest configuration: these tests also run from the kit folder on the GPU machine, where the
repository's tests/conftest.py is absent. GPU tests are skipped, with the reason, where no GPU is visible."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest

os.environ.setdefault("WOODPECKER_CACHE_DIR", tempfile.mkdtemp(prefix="woodpecker-kit-test-cache-"))
HERE = pathlib.Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU (skipped cleanly elsewhere)")


def pytest_collection_modifyitems(config, items):
    if shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidia0"):
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords and HERE in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)
