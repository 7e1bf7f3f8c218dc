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
from woodpecker.models.classic import alexnet, vgg19
from woodpecker.models.densenet import densenet121
from woodpecker.models.inception import inception_v1
from woodpecker.models.mobilenet import mobilenet_v2, mobilenet_v3
from woodpecker.models.resnet import resnet18, resnet50, resnext50
from woodpecker.models.small import shufflenet_v1, shufflenet_v2, squeezenet
from woodpecker.models.vit import vit_b16

ZOO: dict[str, Callable[..., onnx.ModelProto]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "bert": bert,
    "squeezenet": squeezenet,
    "shufflenet_v2": shufflenet_v2,
    "shufflenet_v1": shufflenet_v1,
    "densenet121": densenet121,
    "inception_v1": inception_v1,
    "resnext50": resnext50,
    "mobilenet_v3": mobilenet_v3,
    "alexnet": alexnet,
    "vgg19": vgg19,
    "vit_b16": vit_b16,
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
