"""The kit's prebuilt artifacts: zoo models compiled for the GPU profile, plus one host artifact that proves the
runtime-only install on any machine. Each comes with seeded inputs and onnxruntime's outputs (CPU provider,
computed here), so the device checks against a reference even where onnxruntime is missing. The ONNX model is
not shipped (its random weights would double the kit): the device rebuilds it from the zoo's code, checked by
digest, for the onnxruntime and PyTorch baselines."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np

from woodpecker.runtime.artifact import write_npz

# zoo models whose weights fit the kit (resnet18's alone are 47 MB): depthwise convolutions, fire modules/concat
DEFAULT_GPU_MODELS = ("mobilenet_v2", "squeezenet")
SELFTEST_MODEL = "tiny_cnn"  # the host artifact: compiles in seconds, five kernel families


def build_proto(name: str):
    """The ONNX model of a kit model, built from code with seeded weights (here and on the device)."""
    if name == SELFTEST_MODEL:
        from woodpecker.testing.models import tiny_cnn

        return tiny_cnn()
    from woodpecker import models

    return models.build(name)


def seeded_inputs(proto, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal inputs of the model's graph inputs (symbolic dimensions as 1)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    rng = np.random.default_rng(seed)
    init = {i.name for i in proto.graph.initializer}
    out = {}
    for vi in proto.graph.input:
        if vi.name in init:
            continue
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        out[vi.name] = rng.standard_normal(shape).astype(tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
    return out


def build_artifact(out_dir: pathlib.Path, name: str, target: str) -> dict:
    """out_dir/<name>-<target>/ with model.wpk, model.onnx, inputs.npz and expected.npz; returns its kit entry."""
    import onnxruntime as ort

    import woodpecker

    proto = build_proto(name)
    folder = out_dir / f"{name}-{target}"
    folder.mkdir(parents=True, exist_ok=True)
    # vendor=False: a GPU compile here has no GPU to plan on, and the kit measures woodpecker's own kernels
    model = woodpecker.compile(proto, target=target, vendor=False)
    model.save(folder / "model.wpk")
    inputs = seeded_inputs(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    expected = dict(zip(names, sess.run(names, inputs)))
    (folder / "inputs.npz").write_bytes(write_npz(inputs))
    (folder / "expected.npz").write_bytes(write_npz(expected))
    entry = {"name": name, "target": target, "backend": model.backend, "dir": f"artifacts/{folder.name}",
             "onnx_sha256": hashlib.sha256(proto.SerializeToString()).hexdigest(),
             "inputs": {k: list(v.shape) for k, v in inputs.items()}, "outputs": names}
    (folder / "entry.json").write_text(json.dumps(entry, indent=1) + "\n")
    return entry
