"""A small kit for the current Python (its tvm-ffi repacked from this interpreter: no network), shared by the
devicekit tests: the host artifact, one tiny GPU artifact and a six-candidate calibration suite."""

from __future__ import annotations

import pytest

SMALL_SUITE = ["softmax_1000", "layer_norm_768"]


@pytest.fixture(scope="session")
def small_kit(tmp_path_factory):
    import sys

    from woodpecker.devicekit.build import build_kit

    out = tmp_path_factory.mktemp("kit") / "kit"
    kit = build_kit(out, "h100", f"{sys.version_info.major}.{sys.version_info.minor}", models=["tiny_cnn"],
                    points=2, calibration_tasks=SMALL_SUITE, log=lambda *_: None)
    return out, kit
