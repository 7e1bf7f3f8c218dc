"""The small models that ship in the onnx wheel with stored inputs and outputs (onnx/backend/test/data/
pytorch-converted, pytorch-operator and simple): each is compiled by woodpecker, run on every stored data set and
compared with the stored outputs.

Tolerances: rtol 1e-3 (the backend suite's own default for these models) and atol 1e-5: the stored outputs were
computed by PyTorch, whose sums of products differ in their last bits from ours, which matters for outputs near 0.
Shapes and dtypes must match exactly. Exclusions are in the [model-data] section of excluded.txt, with reasons.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import conformance_suite as suite
from woodpecker import onnx_backend

RTOL, ATOL = 1e-3, 1e-5
EXCLUSIONS = suite.read_exclusions()["model-data"]
CASES = suite.model_data_cases()


def _load_tensor(path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


@pytest.mark.parametrize("case", CASES)
def test_model_data(case):
    why = suite.excluded_by(case, EXCLUSIONS)
    if why is not None:
        pytest.skip(f"excluded ({suite.EXCLUDED_FILE.name}:{why.line}): {why.reason}")
    _check(case)


def _check(case: str) -> None:
    """Compile the model of `case` as woodpecker's ONNX backend does (woodpecker/onnx_backend.py: shape-like graph
    inputs and symbolic dimensions are bound at the first run), with our kernels rather than a vendor library's; run
    every stored data set and compare with the stored outputs."""
    folder = suite.model_data_root() / case
    model = onnx.load(str(folder / "model.onnx"))
    rep = onnx_backend.prepare(model, vendor=False)
    output_names = [vi.name for vi in model.graph.output]
    for data_set in sorted(folder.glob("test_data_set_*")):
        inputs = [_load_tensor(p) for p in sorted(data_set.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))]
        refs = [_load_tensor(p) for p in sorted(data_set.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[1]))]
        assert len(inputs) == len(rep.input_names), \
            f"{data_set.name}: {len(inputs)} stored inputs, the model takes {rep.input_names}"
        got = rep.run(inputs)
        assert len(refs) == len(got)
        for name, have, ref in zip(output_names, got, refs):
            assert have.shape == ref.shape, f"{data_set.name} output {name}: shape {have.shape} != {ref.shape}"
            assert have.dtype == ref.dtype, f"{data_set.name} output {name}: dtype {have.dtype} != {ref.dtype}"
            if ref.dtype.kind in "biu":
                np.testing.assert_array_equal(have, ref, err_msg=f"{data_set.name} output {name}")
            else:
                np.testing.assert_allclose(have, ref, rtol=RTOL, atol=ATOL, err_msg=f"{data_set.name} output {name}")


def test_every_exclusion_matches_a_case():
    stale = [f"line {e.line}: {e.pattern}" for e in EXCLUSIONS if not any(e.matches(c) for c in CASES)]
    assert not stale, f"[model-data] exclusions in {suite.EXCLUDED_FILE.name} that match no model: {stale}"


def test_the_model_data_is_there():
    assert len(CASES) > 100, "the onnx wheel no longer ships the model-data tests where this suite looks"
