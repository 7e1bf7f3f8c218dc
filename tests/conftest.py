"""Shared fixtures. Tests never touch the user's cache: every test session gets its own cache directory."""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

# Before woodpecker (and TVM) are imported: an isolated cache and the thread count the runtime uses.
_CACHE = tempfile.mkdtemp(prefix="woodpecker-test-cache-")
os.environ["WOODPECKER_CACHE_DIR"] = _CACHE
# Unit tests compile hundreds of small models; the planner (which times vendor libraries per call) is tested on
# its own, with vendor=True passed explicitly.
os.environ.setdefault("WOODPECKER_VENDOR", "0")
os.environ.setdefault("TVM_NUM_THREADS", str(os.cpu_count() or 1))


@pytest.fixture
def tmp_db(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "records.db"


def pytest_collection_modifyitems(config, items):
    """GPU tests run only where an NVIDIA GPU is visible; elsewhere they are skipped with the reason."""
    import shutil

    has_gpu = shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidia0")
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lowered_zoo():
    """Tasks of small versions of the zoo models (one of each kernel family)."""
    from woodpecker import models
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize

    tasks = {}
    for proto in (models.build("mobilenet_v2", image_size=32), models.build("resnet18", image_size=32),
                  models.build("bert", seq_len=16, layers=1)):
        lowered = lower_graph(optimize(import_onnx(proto)))
        tasks.update(lowered.tasks)
    return list(tasks.values())
