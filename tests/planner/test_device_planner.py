"""The planner on a device (a GPU target's DeviceExecutor): PyTorch on the device's buffers through DLPack (cuDNN and
cuBLAS on CUDA), checked and timed in place like the host's vendors, replayed from the artifact.

Every test but the last runs the device code path on the CPU device, the one device every machine has: the same
DeviceExecutor, the same DLPack binding, the same plan; only the kernels' target differs from a GPU build."""

from __future__ import annotations

import numpy as np
import pytest

import woodpecker
from woodpecker.frontend.onnx import import_onnx
from woodpecker.lowering.model import lower_graph
from woodpecker.passes.pipeline import optimize
from woodpecker.planner.choices import reference_output
from woodpecker.runtime.vendors import DEVICE_VENDORS, TorchDeviceChoice, make_device_vendor
from woodpecker.runtime.vendors.export_onnx import NotExportable
from woodpecker.planner.plan import plan_regions, planned_program
from woodpecker.planner.regions import regions_of
from woodpecker.runtime.gpu import DeviceExecutor, GpuModel
from woodpecker.testing.models import tiny_cnn, tiny_mlp


class CpuDeviceModel(GpuModel):
    """A GpuModel whose library is the host build and whose device is the CPU: GpuModel's planning and replay
    code paths, runnable without a GPU."""

    def _load(self):
        import tvm

        return tvm.runtime.load_module(self._library_path), tvm.cpu(0)


def _setup(proto):
    from woodpecker.targets import resolve

    host = woodpecker.compile(proto, vendor=False)
    # the host's passes (Winograd's transformed weights among them), so that the regions name the host's constants
    lowered = lower_graph(optimize(import_onnx(proto), resolve("host").pass_options()))
    return host, lowered, regions_of(lowered)


def _device_model(host, tmp_path) -> CpuDeviceModel:
    lib = tmp_path / "host.so"
    host._executable.export_library(str(lib))
    return CpuDeviceModel(host.program, host.constants, host.kernels, dict(host.metadata), str(lib), "")


def _executed(host):
    import tvm

    ex = DeviceExecutor(host.library, host.program, host.constants, tvm.cpu(0))
    ex.set_inputs(host.random_inputs(seed=2))
    ex.execute()
    return ex


@pytest.mark.parametrize("proto", [tiny_cnn(image_size=20, channels=16), tiny_mlp()], ids=["cnn", "mlp"])
def test_torch_on_device_tensors_matches_each_region_reference(proto):
    host, lowered, regions = _setup(proto)
    ex = _executed(host)
    ran = 0
    for region in regions:
        ins = [ex.view(v, region.types[v].shape) for v in region.inputs]
        out_t = region.types[region.output]
        try:
            choice = make_device_vendor("torch", region, lowered.graph.constants, ex.torch_device)
        except NotExportable:
            continue
        assert isinstance(choice, TorchDeviceChoice)
        out = ex.scratch(out_t.shape, out_t.dtype)
        choice.bind(ins, out)()
        ref = reference_output(region, [ex.to_host(x) for x in ins], lowered.graph.constants)
        np.testing.assert_allclose(ex.to_host(out), np.asarray(ref).reshape(out_t.shape), rtol=1e-4, atol=1e-4)
        ran += 1
    assert ran >= len(regions) // 2, "most regions have a torch form"


def test_repacked_weights_are_held_once_on_the_device():
    from woodpecker.runtime.vendors.torch_ops import _REPACKED_WEIGHT_OPS, build_region_fn

    _, lowered, regions = _setup(tiny_cnn(image_size=20, channels=16))
    repacked = [(r, n) for r in regions for n in r.body if n.op in _REPACKED_WEIGHT_OPS]
    assert repacked, "the blocked conv's region repacks its weight"
    checked = 0
    for region, node in repacked:
        try:
            fn = build_region_fn(region.body, region.inputs, region.output, region.types, lowered.graph.constants)
        except NotExportable:
            continue
        assert node.inputs[1] not in fn.device_constants
        checked += 1
    assert checked


def test_only_device_vendors_run_on_a_device():
    host, lowered, regions = _setup(tiny_mlp())
    with pytest.raises(NotExportable, match="does not run on cpu:0"):
        make_device_vendor("onnxruntime", regions[0], lowered.graph.constants, "cpu:0")


def test_device_plan_picks_the_faster_choice_and_replays_it():
    """With torch declared faster everywhere, every exportable call goes to torch; the planned program then runs
    torch on the device buffers and computes what the generated kernels compute."""
    host, lowered, regions = _setup(tiny_cnn(image_size=20, channels=16))
    ex = _executed(host)

    def timer(runs, rounds):
        for run in runs.values():
            run()
        return {name: (1e-6 if name == "torch" else 1e-3) for name in runs}

    def make(kind, region, constants, threads):
        return make_device_vendor(kind, region, constants, ex.torch_device)

    decisions = plan_regions(ex, regions, lowered.graph.constants, [c.func for c in host.program.calls],
                             DEVICE_VENDORS, make=make, timer=timer)
    chosen = [d.chosen for d in decisions]
    assert "torch" in chosen
    for d in decisions:
        torch_result = next(r for r in d.results if r.name == "torch")
        assert (d.chosen == "torch") == (torch_result.error is None), d
    program, vendor_regions, _ = planned_program(host.program, regions, decisions)
    import tvm

    planned = DeviceExecutor(host.library, program, host.constants, tvm.cpu(0), vendor_regions)
    feed = host.random_inputs(seed=5)
    want = host.run(feed)
    got = planned.run(feed)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)


def test_a_wrong_device_choice_is_never_picked():
    host, lowered, regions = _setup(tiny_mlp())
    ex = _executed(host)

    class Wrong:
        name = "torch"

        def bind(self, inputs, out):
            import torch

            o = torch.from_dlpack(out)
            return lambda: o.fill_(1.0)

    def timer(runs, rounds):
        return {name: (1e-6 if name == "torch" else 1e-3) for name in runs}

    decisions = plan_regions(ex, regions, lowered.graph.constants, [c.func for c in host.program.calls],
                             DEVICE_VENDORS, make=lambda *a: Wrong(), timer=timer)
    assert all(d.chosen == "woodpecker" for d in decisions)
    assert all("wrong result" in next(r for r in d.results if r.name == "torch").error for d in decisions)


def test_plan_model_on_a_device_model_saves_and_replays(tmp_path):
    """plan_model on a GpuModel: device vendors only, timed in one process with the device synchronized; the
    artifact keeps the vendor regions and a loaded copy runs the same plan."""
    from woodpecker.planner.planner import plan_model
    from woodpecker.runtime.load import load_artifact

    host, lowered, _ = _setup(tiny_cnn(image_size=20, channels=16))
    gm = _device_model(host, tmp_path)
    planned = plan_model(gm, lowered, None, vendors=DEVICE_VENDORS, threads=1, rounds=4)
    assert isinstance(planned, CpuDeviceModel)
    plan = planned.metadata["plan"]
    assert plan["vendors"] == ["torch"]
    assert plan["model"]["timing"] == "in process, interleaved by blocks, device synchronized"
    assert set(plan["model"]["times_ms"]) <= {"woodpecker", "planned"}
    assert all({r["name"] for r in call["results"]} == {"woodpecker", "torch"} for call in plan["calls"])
    feed = host.random_inputs(seed=7)
    want = host.run(feed)
    got = planned.run(feed)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)
    # the vendor regions travel in the artifact and come back on a GpuModel
    program, constants, vendor_regions = _all_torch(host, lowered)
    forced = gm.with_plan(program, constants, dict(gm.metadata), vendor_regions)
    path = tmp_path / "m.wpk"
    forced.save(path)
    loaded = load_artifact(path)
    assert isinstance(loaded, GpuModel) and set(loaded.vendor_regions) == set(forced.vendor_regions)
    assert any(c.vendor == "torch" for c in loaded.program.calls)


def _all_torch(host, lowered):
    """The program with every exportable call given to torch, and its constants (what a plan would write)."""
    from woodpecker.planner.plan import ChoiceResult, RegionDecision

    regions = regions_of(lowered)
    decisions = []
    for r in regions:
        try:
            make_device_vendor("torch", r, lowered.graph.constants, "cpu:0")
            chosen = "torch"
        except NotExportable:
            chosen = "woodpecker"
        decisions.append(RegionDecision(r.index, r.node, "", chosen, (ChoiceResult(chosen, 1.0),)))
    program, vendor_regions, _ = planned_program(host.program, regions, decisions)
    constants = dict(host.constants)
    for region in vendor_regions.values():
        constants.update({k: lowered.graph.constants[k] for k in region.constant_names})
    return program, constants, vendor_regions


def test_gpu_compile_without_a_gpu_records_why_it_was_not_planned():
    from woodpecker.measure.cuda import gpu_available

    if gpu_available():
        pytest.skip("a GPU is attached: the planned compile is tested by the gpu-marked test")
    gm = woodpecker.compile(tiny_mlp(), target="p100", vendor=True)
    assert "no GPU attached" in gm.metadata["plan"]["skipped"]
    assert not any(c.vendor for c in gm.program.calls)


@pytest.mark.gpu
def test_gpu_compile_plans_cudnn_and_cublas_and_matches_onnxruntime(tmp_path):
    import onnxruntime as ort

    proto = tiny_cnn(image_size=32, channels=32)
    gm = woodpecker.compile(proto, target="p100", vendor=True)
    plan = gm.metadata["plan"]
    assert plan["vendors"] == ["torch"]
    assert any(r["name"] == "torch" and r["median_us"] for call in plan["calls"] for r in call["results"])
    path = tmp_path / "m.wpk"
    gm.save(path)
    loaded = woodpecker.load(path)
    feed = loaded.random_inputs(seed=1)
    got = loaded.run(feed)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    for spec, w in zip(loaded.outputs, want):
        np.testing.assert_allclose(got[spec.name], w, rtol=1e-3, atol=1e-4)
