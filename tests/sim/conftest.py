"""Fixtures of the RISC-V simulation tests: small TE kernels compiled per profile, and the tiny CNN's tasks.

The RISC-V tests run real qemu simulations: they need the cross toolchains and qemu-user (installed by .ci/run);
without them, only those are skipped (NEEDS).
"""

from __future__ import annotations

import pathlib
import shutil

import pytest

# What each test file runs: the RISC-V simulations need the cross toolchains and qemu-user (both rv64 Linux and
# rv32 bare-metal profiles in every file); the plugin is built with the host gcc. The GPU simulator and the profile
# tables need none of them: a machine without the RISC-V tools still runs those.
RISCV_TOOLS = ("riscv64-linux-gnu-gcc", "riscv64-unknown-elf-gcc", "qemu-riscv64", "qemu-riscv32", "gcc")
NEEDS: dict[str, tuple[str, ...]] = {
    "test_riscv_kernel.py": RISCV_TOOLS,
    "test_riscv_measurer.py": RISCV_TOOLS,
    "test_riscv_model.py": RISCV_TOOLS,
    "test_riscv_plugin.py": RISCV_TOOLS,
}


def pytest_collection_modifyitems(config, items):
    from woodpecker.sim.riscv.toolchain import APT_PACKAGES

    for item in items:
        path = pathlib.Path(str(item.fspath))
        if path.parent.name != "sim":
            continue
        missing = [t for t in NEEDS.get(path.name, ()) if shutil.which(t) is None]
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)} (apt-get install {APT_PACKAGES})"))


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
