"""GPU tests that need only TVM's runtime: run by the kit's run.sh on the GPU machine (WOODPECKER_KIT names the
kit, whose prebuilt artifacts they load), and in a checkout with a GPU, where a tiny artifact is compiled first."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest


@pytest.fixture(scope="module")
def gpu_artifact(tmp_path_factory) -> pathlib.Path:
    """A folder with model.wpk, inputs.npz and expected.npz (onnxruntime's outputs) of a GPU artifact."""
    kit = os.environ.get("WOODPECKER_KIT")
    if kit:
        entries = json.loads((pathlib.Path(kit) / "kit.json").read_text())["artifacts"]
        return pathlib.Path(kit) / next(e["dir"] for e in entries if e["backend"] == "cuda")
    from woodpecker.devicekit.artifacts import build_artifact  # a checkout: TVM's compiler is here

    out = tmp_path_factory.mktemp("kit-artifacts")
    entry = build_artifact(out, "tiny_cnn", "h100")
    return out / pathlib.Path(entry["dir"]).name


def _npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.gpu
def test_tvm_sees_the_gpu_with_the_runtime_it_has():
    import tvm

    assert tvm.cuda(0).exist
    if os.environ.get("WOODPECKER_KIT"):
        assert tvm.base._RUNTIME_ONLY  # the kit ships no compiler library: nothing may need it


@pytest.mark.gpu
def test_gpu_artifact_matches_onnxruntime(gpu_artifact):
    import woodpecker

    model = woodpecker.load(gpu_artifact / "model.wpk")
    assert model.backend == "cuda"
    inputs, expected = _npz(gpu_artifact / "inputs.npz"), _npz(gpu_artifact / "expected.npz")
    out = list(model.run(inputs).values())
    for got, (name, ref) in zip(out, expected.items()):
        err = np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-6)
        assert err <= 1e-3, f"{name}: max relative error {err:.3g}"


@pytest.mark.gpu
def test_gpu_artifact_runs_are_repeatable(gpu_artifact):
    import woodpecker

    model = woodpecker.load(gpu_artifact / "model.wpk")
    inputs = _npz(gpu_artifact / "inputs.npz")
    first = [v.copy() for v in model.run(inputs).values()]
    model.runner(inputs)()  # the timed path: every kernel launched, the device synchronized
    again = list(model.run(inputs).values())
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
def test_cuda_source_compiles_for_the_attached_device(gpu_artifact):
    import zipfile

    from woodpecker.runtime.cuda_load import _binary, cuda_compiler, device_arch

    compiler = cuda_compiler()
    assert compiler is not None, "neither cuda-bindings (NVRTC) nor nvcc is available"
    with zipfile.ZipFile(gpu_artifact / "model.wpk") as zf:
        source = zf.read("cuda/kernels.cu").decode()
    assert len(_binary(source, device_arch(), compiler)) > 0
