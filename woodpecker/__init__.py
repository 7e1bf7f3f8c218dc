"""woodpecker: a hardware-aware inference compiler and autotuner.

    import woodpecker
    cm = woodpecker.compile("model.onnx", target="host")
    outputs = cm.run({"input": x})
    cm.save("model.wpk"); cm2 = woodpecker.load("model.wpk")
"""

from woodpecker.version import __version__

from woodpecker import config as _config

# TVM reads TVM_NUM_THREADS once, when its thread pool starts: set it before anything imports tvm.
_config.prepare_tvm_threads()

from woodpecker.api import compile, load  # noqa: E402,A004
from woodpecker.errors import WoodpeckerError  # noqa: E402


def tune(model, target: str = "host", **kwargs):
    """Tune a model's kernels for a target; see woodpecker.tuner.tune for the arguments."""
    from woodpecker.tuner import tune as _tune

    return _tune(model, target, **kwargs)


__all__ = ["compile", "load", "tune", "WoodpeckerError", "__version__"]
