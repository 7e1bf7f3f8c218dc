"""Model zoo built in code with seeded random weights (no downloads): structure matters for speed, values do not.

    from woodpecker import models
    proto = models.build("resnet50")                # onnx.ModelProto, input "input" [1, 3, 224, 224]
    proto = models.build("resnet18", image_size=64) # smaller input for tests
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import onnx

from woodpecker.models.bert import bert
from woodpecker.models.mobilenet import mobilenet_v2
from woodpecker.models.resnet import resnet18, resnet50
from woodpecker.models.small import shufflenet_v2, squeezenet

ZOO: dict[str, Callable[..., onnx.ModelProto]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "bert": bert,
    "squeezenet": squeezenet,
    "shufflenet_v2": shufflenet_v2,
}


def build(name: str, **kwargs) -> onnx.ModelProto:
    from woodpecker.errors import ModelLoadError

    try:
        fn = ZOO[name]
    except KeyError:
        raise ModelLoadError(f"unknown zoo model {name!r}; available: {', '.join(ZOO)}") from None
    # Options arrive as text from the command line (zoo:resnet18?image_size=64): an unknown one or a value of the
    # wrong type is the user's error, not a TypeError deep in the builder or a model with a symbolic input size.
    params = inspect.signature(fn).parameters
    for key, value in kwargs.items():
        if key not in params:
            raise ModelLoadError(f"zoo model {name!r} has no option {key!r}; options: {', '.join(params)}")
        if isinstance(params[key].default, int):
            least = 0 if key == "seed" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                what = "a non-negative" if least == 0 else "a positive"
                raise ModelLoadError(f"zoo model {name!r}: option {key} must be {what} integer, got {value!r}")
    return fn(**kwargs)


__all__ = ["ZOO", "build"]
