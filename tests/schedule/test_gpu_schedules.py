"""GPU schedule templates: every family's default and random valid points compile for CUDA on every supported
architecture (with a real CUDA kernel, not a host-only module), and nvcc accepts the generated source.

nvcc from CUDA 13 compiles sm_75 and newer only; sm_60 and sm_70 sources (identical to the others: TVM emits
the same CUDA C for every arch here) are compiled for sm_75 as a proxy.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import random

import pytest

from woodpecker.schedule.apply import default_knobs, schedule
from woodpecker.space.space import space_for_task
from woodpecker.testing.kernels import conv2d_task, dense_task, gpu_family_tasks

tvm = pytest.importorskip("tvm")

ARCHS = ("sm_60", "sm_70", "sm_75", "sm_80", "sm_90")
TASKS = gpu_family_tasks()


def _target(arch: str):
    from woodpecker.sim.gpu.lower import cuda_target

    return cuda_target(arch)


@pytest.fixture(scope="module")
def sources():
    """name -> {label: CUDA source} for the default and a random valid point of every family task."""
    rng = random.Random(0)
    out = {}
    for name, task in TASKS.items():
        space = space_for_task(task, "gpu")
        points = {"default": space.default}
        for i in range(1):
            p = space.random_point(rng)
            assert p is not None, f"{name}: no valid random point"
            points[f"random{i}"] = p
        out[name] = {}
        for label, knobs in points.items():
            mod = schedule(task, knobs, "gpu")
            per_arch = set()
            for arch in ARCHS:
                ex = tvm.compile(mod, target=_target(arch))
                kinds = [m.kind for m in ex.mod.imports]
                # an unscheduled (unbound) PrimFunc compiles silently to a host-only module: demand a kernel
                assert kinds == ["cuda"], f"{name} {label} {arch}: imports {kinds}"
                per_arch.add(ex.mod.imports[0].inspect_source())
            assert len(per_arch) == 1, f"{name} {label}: the CUDA source differs between architectures"
            out[name][label] = per_arch.pop()
    return out


def test_every_family_is_covered():
    families = {t.family for t in TASKS.values()}
    assert {
        "conv2d",
        "dense",
        "dense_packed",
        "batch_matmul",
        "pool2d",
        "global_pool",
        "row_reduce",
        "injective",
    } <= families


@pytest.mark.parametrize("name", sorted(TASKS))
def test_default_and_random_points_compile_for_cuda(name, sources):
    assert set(sources[name]) == {"default", "random0"}
    for src in sources[name].values():
        assert "__global__" in src and (
            "blockIdx.x" in src or "threadIdx.x" in src
        )  # one-block grids drop blockIdx


def test_nvcc_accepts_every_generated_source(sources):
    from woodpecker.sim.gpu.nvcc import compile_source, nvcc_path

    if nvcc_path() is None:
        pytest.skip("nvcc is not on the PATH")
    unique = {
        hashlib.sha256(s.encode()).hexdigest(): (f"{n}/{label}", s)
        for n, d in sources.items()
        for label, s in d.items()
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(unique, pool.map(lambda item: compile_source(item[1], "sm_60"), unique.values())))
    failed = {unique[h][0]: r.log.splitlines()[-3:] for h, r in results.items() if not r.ok}
    assert not failed, failed
    assert all(r.arch == "sm_75" for r in results.values()), "sm_60 is compiled for the sm_75 proxy"
    assert all(r.registers for r in results.values()), "ptxas reports the registers of every kernel"


def test_default_knobs_are_valid_points_of_the_space():
    for name, task in TASKS.items():
        space = space_for_task(task, "gpu")
        assert space.is_valid(space.default), (name, space.violations(space.default))
        assert space.default == {**default_knobs(task, "gpu"), **space.default}


def test_constraints_reject_what_the_hardware_cannot_run():
    task = dense_task(256, 512, 256)
    space = space_for_task(task, "gpu")
    too_many_threads = space.point({"thread_m": 32, "thread_n": 64})
    assert any("max_threads_per_block" in v for v in space.violations(too_many_threads))
    # staged tiles that do not fit 48 KB of shared memory: (128 + 128) rows x 64-deep steps x 4 B = 64 KB
    big = space.point({"thread_m": 32, "inner_m": 4, "thread_n": 32, "inner_n": 4, "stage": 1, "split_k": 64})
    assert any("shared memory" in v for v in space.violations(big))
    # the same point is fine on a profile that allows more shared memory per block
    roomy = space_for_task(task, "gpu", limits={"max_shared_memory_per_block": 98304})
    assert not any("shared memory" in v for v in roomy.violations(big))


def test_shared_memory_constraint_bounds_the_real_allocation():
    """The derived constraint's footprint is never below what TVM allocates (a point that passes fits)."""
    from woodpecker.schedule import gpu
    from woodpecker.schedule.structure import analyze
    from woodpecker.sim.gpu.features import extract_module
    from woodpecker.sim.gpu.lower import lower_device
    from woodpecker.space.expr import compile_expr, evaluate

    rng = random.Random(1)
    checked = 0
    for task in (
        conv2d_task(1, 16, 14, 32, 3, 1, 1),
        conv2d_task(1, 32, 14, 32, 3, 1, 1, groups=32),
        dense_task(64, 128, 96),
    ):
        st = analyze(task.kernel)
        expr = gpu.space_constraints(task.family, st, task.kernel)[0][0]
        footprint = compile_expr(expr.split(" <= ")[0].removeprefix("stage == 0 or "))
        space = space_for_task(task, "gpu")
        for _ in range(6):
            p = space.random_point(rng)
            if not p.get("stage"):
                continue
            allocated = extract_module(lower_device(schedule(task, p, "gpu"), "sm_80"))[
                0
            ].smem_bytes_per_block
            assert allocated <= evaluate(footprint, {**space.env, **p}), (task.name, p)
            checked += 1
    assert checked >= 4


def test_cpu_path_is_unchanged_by_the_gpu_branch():
    task = TASKS["dense"]
    assert default_knobs(task) == default_knobs(task, "cpu")
    assert "thread_m" not in default_knobs(task, "cpu")
    mod = schedule(task, None, "cpu")
    ex = tvm.compile(mod, target="llvm")
    assert not [m for m in ex.mod.imports if m.kind == "cuda"]
