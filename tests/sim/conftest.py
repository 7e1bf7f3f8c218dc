"""Fixtures of the RISC-V simulation tests: small TE kernels compiled per profile, and the tiny CNN's tasks.

Every test here runs real qemu simulations; they need the cross toolchains and qemu-user (installed by .ci/run).
"""

from __future__ import annotations

import shutil

import pytest

REQUIRED_TOOLS = ("riscv64-linux-gnu-gcc", "riscv64-unknown-elf-gcc", "qemu-riscv64", "qemu-riscv32", "gcc")


def pytest_collection_modifyitems(config, items):
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if not missing:
        return
    from woodpecker.sim.riscv.toolchain import APT_PACKAGES

    skip = pytest.mark.skip(reason=f"needs {', '.join(missing)} (apt-get install {APT_PACKAGES})")
    for item in items:
        if "/tests/sim/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def objects(tmp_path_factory):
    """Compile (module factory, profile) once per session: objects(name, profile, factory) -> object path."""
    from woodpecker.sim.riscv.kernel import build_kernel_object

    folder = tmp_path_factory.mktemp("riscv-objects")
    built = {}

    def get(name: str, profile: str, factory):
        key = (name, profile)
        if key not in built:
            built[key] = build_kernel_object(factory(), profile, folder / f"{name}-{profile}.o")
        return built[key]

    return get


@pytest.fixture(scope="session")
def tiny_cnn_lowered():
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.testing.models import tiny_cnn

    graph = import_onnx(tiny_cnn())
    return graph, lower_graph(optimize(graph))


@pytest.fixture(scope="session")
def cnn_conv(tiny_cnn_lowered):
    """The tiny CNN's second convolution (16 -> 16 channels, 16x16, residual + ReLU) and its reference data."""
    from woodpecker.measure.reference import reference_io

    _, lowered = tiny_cnn_lowered
    key = [k for k, t in lowered.tasks.items() if t.family == "conv2d_nchwc"][-1]
    task = lowered.tasks[key]
    node, call = lowered.example(key)
    inputs, expected = reference_io(task, node, lowered.graph, call.args)
    return task, inputs, expected
