import pytest


@pytest.fixture(scope="session")
def lowered_zoo():
    """Tasks of small versions of the zoo models (one of each kernel family)."""
    from woodpecker import models
    from woodpecker.frontend.onnx import import_onnx
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize

    tasks = {}
    for proto in (models.build("mobilenet_v2", image_size=32), models.build("resnet18", image_size=32),
                  models.build("bert", seq_len=16, layers=1)):
        lowered = lower_graph(optimize(import_onnx(proto)))
        tasks.update(lowered.tasks)
    return list(tasks.values())
