"""woodpecker as an ONNX backend (onnx.backend.base), so that ONNX's own conformance suite can run against it.

    import woodpecker.onnx_backend as backend
    rep = backend.prepare(model_proto)          # compiles for the host CPU
    outputs = rep.run([x, y])                   # positional inputs, as the suite passes them

woodpecker compiles ahead of time, so Reshape's shape, Slice's starts, the Reduce ops' axes and the like must be
constants. The suite passes many of them as graph inputs. A model that does not compile as given, and has such
shape-like inputs (int32/int64 vectors, or scalars: Pad's constant_value, Range's bounds, Dropout's training_mode),
is compiled at its first run instead, with those inputs bound as constants (a run with other values compiles
again). A model with a symbolic input dimension is compiled at its first run too, for the shapes it is given (a run
with other shapes compiles again). Everything else about it is compiled and run as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep

_INDEX_TYPES = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
_SCALAR_TYPES = (*_INDEX_TYPES, onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.BOOL,
                 onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def _shape_like_inputs(model: onnx.ModelProto) -> list[str]:
    initializers = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        tt = vi.type.tensor_type
        if vi.name in initializers or not tt.HasField("shape"):
            continue
        rank = len(tt.shape.dim)
        if (rank == 1 and tt.elem_type in _INDEX_TYPES) or (rank == 0 and tt.elem_type in _SCALAR_TYPES):
            out.append(vi.name)
    return out


def _symbolic_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs with a dimension that is not a fixed size."""
    initializers = {i.name for i in model.graph.initializer}
    return [vi.name for vi in model.graph.input
            if vi.name not in initializers and vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")
            and any(not d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim)]


def _bind(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The model with these graph inputs turned into initializers."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    kept = [vi for vi in bound.graph.input if vi.name not in values]
    del bound.graph.input[:]
    bound.graph.input.extend(kept)
    for name, value in values.items():
        bound.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return bound


class WoodpeckerRep(BackendRep):
    def __init__(self, compiled, model: onnx.ModelProto | None = None, deferred: Sequence[str] = (),
                 symbolic: Sequence[str] = (), options: dict[str, Any] | None = None) -> None:
        self.compiled = compiled
        self.options = dict(options or {})  # woodpecker.compile's keyword arguments (e.g. vendor=False)
        self.model = model
        self.deferred = list(deferred)  # graph inputs bound as constants at run time (see the module docstring)
        self.symbolic = list(symbolic)  # graph inputs whose shape is taken from the run (see the module docstring)
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in {i.name for i in model.graph.initializer}] \
            if model is not None else [t.name for t in compiled.inputs]
        self._specialized: dict[bytes, Any] = {}

    def _compiled_for(self, feed: dict[str, np.ndarray]):
        if not self.deferred and not self.symbolic:
            return self.compiled, feed
        import woodpecker
        from woodpecker.errors import UnsupportedOpError

        values = {name: np.asarray(feed[name]) for name in self.deferred}
        shapes = {name: np.shape(feed[name]) for name in self.symbolic if name not in values}
        key = b"".join(v.dtype.str.encode() + str(v.shape).encode() + v.tobytes() for v in values.values())
        key += str(sorted(shapes.items())).encode()
        if key not in self._specialized:
            # input_shapes given to prepare() join the feed's (which win), for the inputs still inputs once the
            # deferred ones are bound as constants
            options = dict(self.options)
            bound = _bind(self.model, values)
            remaining = {i.name for i in bound.graph.input}
            shapes = {k: v for k, v in {**options.pop("input_shapes", {}), **shapes}.items() if k in remaining}
            try:
                self._specialized[key] = woodpecker.compile(  # type: ignore[arg-type]
                    bound, target="host", input_shapes=shapes, **options)
            except UnsupportedOpError:
                if self.deferred or not _shape_like_inputs(self.model):  # type: ignore[arg-type]
                    raise
                self.deferred = _shape_like_inputs(self.model)  # type: ignore[arg-type]
                return self._compiled_for(feed)
        return self._specialized[key], {k: v for k, v in feed.items() if k not in values}

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feed = dict(zip(self.input_names, inputs))
        compiled, feed = self._compiled_for(feed)
        outs = compiled.run(feed)
        return tuple(outs[t.name] for t in compiled.outputs)


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
        from woodpecker.errors import UnsupportedOpError

        super().prepare(model, device)  # checks the model
        # kwargs: woodpecker.compile's options (the conformance tests pass vendor=False)
        symbolic = _symbolic_inputs(model)
        if symbolic:
            return WoodpeckerRep(None, model, symbolic=symbolic, options=kwargs)
        try:
            return WoodpeckerRep(woodpecker.compile(model, target="host", **kwargs), options=kwargs)
        except UnsupportedOpError:
            deferred = _shape_like_inputs(model)
            if not deferred:
                raise
            return WoodpeckerRep(None, model, deferred, options=kwargs)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Sequence[np.ndarray], device: str = "CPU", **kwargs: Any):
        return cls.prepare(model, device, **kwargs).run(inputs)


prepare = WoodpeckerBackend.prepare
run_model = WoodpeckerBackend.run_model
supports_device = WoodpeckerBackend.supports_device
