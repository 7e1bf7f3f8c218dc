"""Loading GPU artifacts with TVM's runtime alone (the device kit's machine has no compiler library and no DSL
parser): the helpers import without the compile-time packages and compile CUDA source without TVM's Target."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

BLOCKER = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"lark", "deap", "stable_baselines3", "gymnasium", "xgboost", "scipy", "onnx",
                                  "onnxruntime", "torch", "typer", "rich"}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, _Block())
"""


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TVM_USE_RUNTIME_LIB": "1"}
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, env=env,
                          timeout=300)


def test_gpu_load_path_imports_without_compile_time_packages():
    proc = _python(
        "import tvm, woodpecker.runtime.gpu, woodpecker.runtime.cuda_load as c\n"
        "assert tvm.base._RUNTIME_ONLY\n"
        "assert isinstance(c.ensure_cuda_runtime(), bool) and isinstance(c.gpu_available(), bool)\n"
        "assert 'lark' not in sys.modules and 'woodpecker.dsl.parser' not in sys.modules\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_arch_only_target_satisfies_compile_cuda():
    from tvm.support import nvcc

    from woodpecker.runtime.cuda_load import _ArchOnlyTarget

    assert nvcc.get_target_compute_version(_ArchOnlyTarget("sm_90")) == "9.0"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_runtime_only_tvm_compiles_cuda_source_with_nvcc():
    proc = _python(
        "from woodpecker.runtime.cuda_load import _binary\n"
        "src = 'extern \"C\" __global__ void k(float* x) { x[threadIdx.x] *= 2.0f; }'\n"
        "print(len(_binary(src, 'sm_90', 'nvcc')))\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip()) > 0
