"""woodpecker as an ONNX backend (onnx.backend.base), so that ONNX's own conformance suite can run against it.

    import woodpecker.onnx_backend as backend
    rep = backend.prepare(model_proto)          # compiles for the host CPU
    outputs = rep.run([x, y])                   # positional inputs, as the suite passes them
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep


class WoodpeckerRep(BackendRep):
    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self.input_names = [t.name for t in compiled.inputs]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feed = dict(zip(self.input_names, inputs))
        outs = self.compiled.run(feed)
        return tuple(outs[t.name] for t in self.compiled.outputs)


class WoodpeckerBackend(Backend):
    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return device.upper() == "CPU"

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper() == "CPU"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> WoodpeckerRep:
        import woodpecker

        super().prepare(model, device, **kwargs)  # checks the model
        return WoodpeckerRep(woodpecker.compile(model, target="host"))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Sequence[np.ndarray], device: str = "CPU", **kwargs: Any):
        return cls.prepare(model, device, **kwargs).run(inputs)


prepare = WoodpeckerBackend.prepare
run_model = WoodpeckerBackend.run_model
supports_device = WoodpeckerBackend.supports_device
