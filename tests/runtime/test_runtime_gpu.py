"""GPU targets: compile (no GPU needed), the artifact's CUDA source, the device executor, and (on a GPU) a run
that matches onnxruntime."""

from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest

import woodpecker
from woodpecker.errors import TargetError
from woodpecker.measure.cuda import gpu_available
from woodpecker.runtime.gpu import CUDA_SOURCE, DeviceExecutor, GpuModel
from woodpecker.testing.models import tiny_cnn


@pytest.fixture(scope="module")
def model():
    return tiny_cnn()


@pytest.fixture(scope="module")
def gpu_model(model):
    return woodpecker.compile(model, target="p100", vendor=False)


def test_compile_for_a_gpu_profile_without_a_gpu(gpu_model):
    assert isinstance(gpu_model, GpuModel) and gpu_model.backend == "cuda"
    assert gpu_model.metadata["target"]["profile"] == "p100"
    assert all(k.origin == "default" for k in gpu_model.kernels)
    # at least one __global__ kernel per task (a padding stage can be a launch of its own), in CUDA C
    assert gpu_model.cuda_source.count("__global__") >= len(gpu_model.kernels)
    for k in gpu_model.kernels:
        assert f"{k.name}_kernel(" in gpu_model.cuda_source, k.name
    assert "threadIdx" in gpu_model.cuda_source and "blockIdx" in gpu_model.cuda_source


def test_artifact_holds_the_cuda_source_and_loads_without_a_gpu(gpu_model, tmp_path):
    import zipfile

    path = tmp_path / "m.wpk"
    gpu_model.save(path)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"kernels.so", CUDA_SOURCE, "weights.npz"} <= names
        assert zf.read(CUDA_SOURCE).decode() == gpu_model.cuda_source
    loaded = woodpecker.load(path)
    assert isinstance(loaded, GpuModel) and loaded.cuda_source == gpu_model.cuda_source
    assert [k.name for k in loaded.kernels] == [k.name for k in gpu_model.kernels]
    if not gpu_available():
        with pytest.raises(TargetError, match="needs an NVIDIA GPU"):
            loaded.run(loaded.random_inputs())


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_artifact_cuda_source_compiles_with_nvcc(gpu_model):
    from woodpecker.sim.gpu.nvcc import compile_source

    result = compile_source(gpu_model.cuda_source, "sm_60")  # sm_75 stands in for sm_60 with CUDA 13
    assert result.ok, result.log
    assert {f"{k.name}_kernel" for k in gpu_model.kernels} <= set(result.registers)


def test_device_executor_matches_the_host_executor_on_the_cpu_device(model):
    """The device executor's arena, views, copy-in and copy-out, on the one device every machine has."""
    import tvm

    host = woodpecker.compile(model, target="host", vendor=False)
    feed = host.random_inputs(seed=3)
    expected = host.run(feed)
    ex = DeviceExecutor(host.library, host.program, host.constants, tvm.cpu(0))
    roots = set(ex.memory.buffer_of)
    assert len(ex.memory.buffer_bytes) < len(roots), "dead values' buffers are reused"
    got = ex.run(feed)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5)
    # the per-call profile `woodpecker bench` prints, one figure per call
    profile = ex.profile(repeat=2)
    assert [f for f, _ in profile] == [c.func for c in host.program.calls] and all(t > 0 for _, t in profile)
    # inputs are validated as on the host
    from woodpecker.errors import InputError

    with pytest.raises(InputError, match="unknown input"):
        ex.set_inputs({"nope": np.zeros(1, np.float32)})


@pytest.mark.gpu
def test_gpu_model_matches_onnxruntime_on_a_gpu(model, gpu_model, tmp_path):
    path = tmp_path / "m.wpk"
    gpu_model.save(path)
    loaded = woodpecker.load(path)
    feed = loaded.random_inputs(seed=1)
    got = loaded.run(feed)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, feed)
    for spec, w in zip(loaded.outputs, want):
        np.testing.assert_allclose(got[spec.name], w, rtol=1e-3, atol=1e-4)
    assert loaded.benchmark(feed, repeat=5, warmup=1)["median_ms"] > 0
