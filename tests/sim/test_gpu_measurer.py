"""GPU measurers: GpuSimMeasurer end to end on a small task (estimates, failures as data, the reference
check); CudaMeasurer's builds without a GPU, its clear refusal without one, and real timing where a GPU is
attached; the calibration fit and the calibration script's refusal without a GPU."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from woodpecker.errors import TargetError
from woodpecker.measure.measurer import MeasureOptions
from woodpecker.space.space import space_for_task
from woodpecker.testing.kernels import dense_task

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAS_GPU = shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidia0")


@pytest.fixture(scope="module")
def dense():
    task = dense_task(64, 128, 96, name="sim_dense")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 128)).astype("float32")
    w = rng.standard_normal((96, 128)).astype("float32")
    return task, [x, w], x @ w.T


def test_sim_measurer_estimates_candidates_and_reports_failures(dense):
    import random

    from woodpecker.sim.gpu.measurer import GpuSimMeasurer
    from woodpecker.sim.gpu.model import GpuEstimate

    task, inputs, expected = dense
    space = space_for_task(task, "gpu")
    rng = random.Random(0)
    points = [space.default, space.random_point(rng), space.random_point(rng)]
    too_wide = dict(space.default, thread_m=64, thread_n=32)  # 2048 threads per block
    with GpuSimMeasurer("a100", build_workers=2) as m:
        assert m.measurement == "simulated:analytical-gpu"
        m.set_reference(task, inputs, expected)
        results = m.measure(task, points + [too_wide])
        for r in results[:3]:
            assert r.ok and len(r.run_secs) == 1 and 1e-6 < r.cost < 1e-2, r
        assert (
            not results[3].ok and results[3].error.startswith("does not launch") and results[3].cost == np.inf
        )
        assert m.measure(task, points[:1])[0] == results[0], "an estimate is deterministic (and cached)"
        (est,) = m.estimate_many([(task, points[0])])
        assert isinstance(est, GpuEstimate) and est.seconds == results[0].cost and est.limiter in est.terms
        # a reference the algorithm disagrees with fails every candidate of the task, before any estimate
        m.set_reference(task, inputs, expected + 1.0)
        wrong = m.measure(task, points[:1])[0]
        assert not wrong.ok and wrong.error.startswith("reference check failed")


def test_sim_measurer_turns_schedule_errors_into_failed_builds(dense):
    from woodpecker.sim.gpu.measurer import GpuSimMeasurer

    task, inputs, expected = dense
    with GpuSimMeasurer("t4", build_workers=1) as m:
        m.set_reference(task, inputs, expected)
        (r,) = m.measure(task, [dict(space_for_task(task, "gpu").default, split_k="nonsense")])
    assert not r.ok and r.error.startswith("build failed")


def test_sim_measurer_needs_a_gpu_profile():
    from woodpecker.sim.gpu.measurer import GpuSimMeasurer

    with pytest.raises(ValueError, match="GPU profile"):
        GpuSimMeasurer("host")


@pytest.mark.skipif(HAS_GPU, reason="checks the behaviour without a GPU")
def test_cuda_measurer_refuses_clearly_without_a_gpu():
    from woodpecker.measure.cuda import CudaMeasurer

    with pytest.raises(TargetError, match="no NVIDIA GPU is visible"):
        CudaMeasurer()


def test_cuda_build_job_compiles_the_library_and_the_device_binary(tmp_path, dense):
    """The builder half of CudaMeasurer needs nvcc, not a GPU."""
    from woodpecker.measure.cuda import cuda_build_job
    from woodpecker.sim.gpu.nvcc import nvcc_path

    if nvcc_path() is None:
        pytest.skip("nvcc is not on the PATH")
    task, _, _ = dense
    target = {"kind": "cuda", "arch": "sm_75", "host": {"kind": "llvm"}}
    out = tmp_path / "cand.so"
    res = cuda_build_job(task, space_for_task(task, "gpu").default, target, str(out), str(tmp_path), "nvcc")
    assert out.exists() and not res["cached"]
    assert len(list(tmp_path.glob("*.bin"))) == 1, "the fatbin is cached for the runner"
    assert cuda_build_job(task, {}, target, str(out), str(tmp_path), "nvcc")["cached"]


@pytest.mark.gpu
def test_cuda_measurer_times_checked_candidates_on_the_gpu(dense):
    from woodpecker.measure.cuda import CudaMeasurer

    task, inputs, expected = dense
    space = space_for_task(task, "gpu")
    with CudaMeasurer(options=MeasureOptions(repeat=3, min_repeat_ms=5)) as m:
        assert m.measurement.startswith("real:cuda:")
        m.set_reference(task, inputs, expected)
        (r,) = m.measure(task, [space.default])
        assert r.ok and len(r.run_secs) == 3 and all(s > 0 for s in r.run_secs)
        m.set_reference(task, inputs, expected + 1.0)
        (wrong,) = m.measure(task, [space.default])
        assert not wrong.ok and "wrong result" in wrong.error


def test_fit_recovers_known_efficiency_factors():
    """Times made by the model with known factors (and 3 % noise) are fitted back: ranks and errors improve.
    """
    import random

    from woodpecker.hw.profile import load_profile
    from woodpecker.schedule.apply import schedule
    from woodpecker.sim.gpu.features import extract_module
    from woodpecker.sim.gpu.fit import Sample, fit_efficiency
    from woodpecker.sim.gpu.lower import lower_device
    from woodpecker.sim.gpu.model import Efficiency, GpuDevice, estimate
    from woodpecker.testing.kernels import gpu_family_tasks

    device = GpuDevice.from_profile(load_profile("v100"))
    truth = Efficiency(flop=0.7, issue=0.8, lsu=0.5, l2=0.6, dram=0.85, launch=1.5)
    rng, noise = random.Random(0), np.random.default_rng(0)
    samples = []
    for name, task in gpu_family_tasks().items():
        space = space_for_task(task, "gpu")
        for p in (space.default, space.random_point(rng)):
            feats = extract_module(lower_device(schedule(task, p, "gpu"), device.arch))
            t = estimate(feats, device, None, truth).seconds * float(np.exp(noise.normal(0, 0.03)))
            samples.append(Sample(feats, None, t))
    fit = fit_efficiency(samples, device)
    assert fit.rms_log_error_after < 0.1 < fit.rms_log_error_before
    assert fit.kendall_tau_after >= fit.kendall_tau_before and fit.kendall_tau_after > 0.8
    assert fit.efficiency.launch == pytest.approx(1.5, rel=0.2), "small kernels pin the launch overhead"


@pytest.mark.skipif(HAS_GPU, reason="checks the behaviour without a GPU")
def test_calibration_script_stops_with_a_clear_message_without_a_gpu():
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_calibrate.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].startswith("error: no NVIDIA GPU is visible"), r.stderr
