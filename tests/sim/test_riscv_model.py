"""Whole models on a simulated RISC-V target: the generated firmware C (model.c / model.h / weights.S) linked
with the kernel objects runs under qemu and matches the host build of the same model."""

from __future__ import annotations

import numpy as np
import pytest

from woodpecker.errors import InputError
from woodpecker.runtime.executor import plan_program_memory
from woodpecker.sim.riscv.model import build_kernel_objects, run_model, write_model_sources


@pytest.fixture(scope="module")
def host_cnn():
    import woodpecker
    from woodpecker.testing.models import tiny_cnn

    cm = woodpecker.compile(tiny_cnn(), target="host")
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    return cm, x, cm.run({"input": x})


@pytest.fixture(scope="module")
def cnn_program(tiny_cnn_lowered):
    from woodpecker.lowering.to_runtime import to_program as make_program

    _, lowered = tiny_cnn_lowered
    return lowered, *make_program(lowered)


@pytest.mark.parametrize("profile", ["rv64gcv128", "rv32imf"])
def test_tiny_cnn_matches_host(tmp_path, host_cnn, cnn_program, profile):
    cm, x, expected = host_cnn
    lowered, program, constants = cnn_program
    objects = build_kernel_objects(lowered.tasks, profile, tmp_path / "objects")
    assert {o.origin for o in objects.values()} == {"default"}
    r = run_model(program, constants, [o.path for o in objects.values()], {"input": x}, profile)
    assert set(r.outputs) == set(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(r.outputs[name], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # one measured region per kernel call; together they are the model's counts
    assert [c.func for c in r.calls] == [c.func for c in program.calls]
    assert sum(c.counts["insns"] for c in r.calls) == r.counts["insns"] > 0
    assert r.cycles == pytest.approx(sum(c.cycles for c in r.calls))
    convs = [c for c in r.calls if c.func.startswith("fused_conv2d")]
    assert max(convs, key=lambda c: c.cycles).cycles > 0.5 * r.cycles, "the convolutions dominate the model"


def test_arena_layout_is_the_host_executors(host_cnn):
    cm, _, _ = host_cnn
    plan = plan_program_memory(cm.program, cm.constants)
    host = cm.executor.memory
    assert plan.arena_bytes == host.arena_bytes
    assert dict(plan.placements) == dict(host.placements) and dict(plan.root) == dict(host.root)


def test_firmware_sources_compile_without_the_simulator(tmp_path, cnn_program):
    """model.c needs nothing but a C compiler: no markers, no libc headers beyond stddef/stdint."""
    import subprocess

    from woodpecker.hw.profile import load_profile
    from woodpecker.sim.riscv.toolchain import toolchain_for

    _, program, constants = cnn_program
    src = write_model_sources(program, constants, tmp_path, name="tiny_cnn")
    header = src.model_h.read_text()
    assert "int woodpecker_model_run(const void *const *inputs, void *const *outputs);" in header
    assert "#define WOODPECKER_INPUT0_BYTES 3072" in header
    assert src.weights_bin.stat().st_size == src.weights_bytes >= sum(v.nbytes for v in constants.values())
    tc = toolchain_for(load_profile("rv32imf"))
    for f in (src.model_c, src.weights_s):
        proc = subprocess.run([tc.cc, f"-march={tc.march}", f"-mabi={tc.mabi}", "-O2", "-Wall", "-Werror",
                               "-ffreestanding", f"-Wa,-I{tmp_path}", "-c", str(f), "-o", str(f) + ".o"],
                              capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr


def test_inputs_are_checked(tmp_path, cnn_program):
    _, program, constants = cnn_program
    with pytest.raises(InputError, match="missing input 'input'"):
        run_model(program, constants, [], {}, "rv32imf")
    with pytest.raises(InputError, match=r"has shape \[1, 3, 8, 8\]"):
        run_model(program, constants, [], {"input": np.zeros((1, 3, 8, 8), np.float32)}, "rv32imf")


def test_transformer_block_on_a_soft_float_mcu(tmp_path):
    """Layer norm and softmax without an FPU: libgcc soft-float plus picolibc's sqrtf, linked into the image."""
    from woodpecker.lowering.to_runtime import to_program as make_program
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.ir.interpreter import interpret
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.testing.models import tiny_mlp

    graph = import_onnx(tiny_mlp())
    lowered = lower_graph(optimize(graph))
    program, constants = make_program(lowered)
    x = np.random.default_rng(1).standard_normal((1, 8, 32)).astype(np.float32)
    want = interpret(graph, {"input": x})[0]
    objects = build_kernel_objects(lowered.tasks, "esp32c3", tmp_path)
    r = run_model(program, constants, [o.path for o in objects.values()], {"input": x}, "esp32c3")
    (got,) = r.outputs.values()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert r.counts["fp"] == r.counts["fma"] == 0 and r.counts["insns"] > 1_000_000
