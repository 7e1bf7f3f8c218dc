"""The five GPU hardware profiles: load, resolve by TVM tag names, build TVM targets, feed the model, cite
sources."""

from __future__ import annotations

import re

import pytest

from woodpecker.data import data_dir
from woodpecker.hw.profile import load_profile
from woodpecker.sim.gpu.model import GpuDevice

GPUS = {"p100": "sm_60", "v100": "sm_70", "t4": "sm_75", "a100": "sm_80", "h100": "sm_90"}
TAGS = {
    "p100": "nvidia/tesla-p100",
    "v100": "nvidia/nvidia-v100",
    "t4": "nvidia/nvidia-t4",
    "a100": "nvidia/nvidia-a100",
    "h100": "nvidia/nvidia-h100",
}
IDENTITY = (
    "id",
    "name",
    "kind",
    "target_class",
    "measurement",
    "aliases",
    "kind",
    "arch",
    "compute_capability",
)


@pytest.mark.parametrize("gpu", sorted(GPUS))
def test_profile_loads_with_the_schema(gpu):
    p = load_profile(gpu)
    assert (p.kind, p.target_class, p.measurement) == ("gpu", "gpu", "simulated:analytical-gpu")
    assert p.simulated
    assert p.target["kind"] == "cuda" and p.target["arch"] == GPUS[gpu] and p.target["host"]["kind"] == "llvm"
    assert load_profile(TAGS[gpu]).id == gpu, "TVM's CUDA tag name resolves to the profile"
    dev = GpuDevice.from_profile(p)
    # the peak is not a free number: SMs x lanes x 2 (FMA) x clock
    assert dev.peak_flops == pytest.approx(p.params["peak_fp32_flops"], rel=0.02)
    assert 0 < dev.dram_bytes_per_s < dev.l2_bytes_per_s
    assert dev.max_shared_memory_per_block <= p.params["max_shared_memory_per_block_optin"]


@pytest.mark.parametrize("gpu", sorted(GPUS))
def test_profile_is_a_valid_tvm_target(gpu):
    tvm = pytest.importorskip("tvm")
    t = tvm.target.Target(dict(load_profile(gpu).target))
    assert t.kind.name == "cuda" and str(t.attrs["arch"]) == GPUS[gpu]
    assert int(t.attrs["max_threads_per_block"]) == 1024


@pytest.mark.parametrize("gpu", sorted(GPUS))
def test_every_device_number_cites_a_source_or_is_marked_an_estimate(gpu):
    text = (data_dir("hw_profiles") / f"{gpu}.toml").read_text()
    for line in text.splitlines():
        m = re.match(r"\s*([a-z_0-9]+)\s*=\s*([-0-9.e+]+)\s*(#.*)?$", line)
        if not m or m.group(1) in IDENTITY:
            continue
        comment = m.group(3) or ""
        assert "source" in comment or "estimate" in comment, f"{gpu}.toml: {m.group(1)} has no source: {line}"
