"""The planner's own contenders: woodpecker's generated kernel for a call, and the reference output a contender's
result is checked against. The vendor contenders (onnxruntime, PyTorch, numpy) are in woodpecker.runtime.vendors,
which also runs them when a planned model is executed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from woodpecker.ir.interpreter import run_nodes
from woodpecker.runtime.region import Region


class GeneratedChoice:
    name = "woodpecker"

    def __init__(self, func, tvm_args) -> None:
        self.func, self.tvm_args = func, tvm_args

    def bind(self, inputs: Sequence[np.ndarray], out: np.ndarray) -> Callable[[], None]:
        func, args = self.func, self.tvm_args
        return lambda: func(*args)


def reference_output(region: Region, inputs: Sequence[np.ndarray], constants: Mapping[str, np.ndarray]) -> np.ndarray:
    env = {k: constants[k] for k in region.constant_names}
    env.update(zip(region.inputs, [np.array(a) for a in inputs]))
    run_nodes(region.body, env)
    return env[region.output]
