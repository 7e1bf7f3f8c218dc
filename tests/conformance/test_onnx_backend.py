"""ONNX's own operator conformance tests (onnx.backend.test node tests) run against woodpecker.onnx_backend.

Included: every node test of the installed onnx whose model uses only operators woodpecker imports (see
conformance_suite). Excluded: the patterns in excluded.txt, each skipped with the reason written next to it. The
real-model tests (which download data) and the model-data tests of BackendTest are not collected here; the
latter run in test_onnx_model_data.py.

Every included test runs here (about 200 s on 2 cores); `python scripts/conformance_report.py` runs the same tests
and prints the pass rate.
"""

from __future__ import annotations

import re
import unittest

import onnx.backend.test

import conformance_suite as suite
import woodpecker.onnx_backend

EXCLUSIONS = suite.read_exclusions()["node"]
SELECTED = suite.supported_node_tests()

backend_test = onnx.backend.test.BackendTest(woodpecker.onnx_backend, __name__)
# One include pattern per op family would also match tests of unsupported neighbours (test_reduce_sum matches
# test_reduce_sum_square_..., test_cast matches test_castlike_...): include the supported tests by name.
backend_test.include("^(" + "|".join(re.escape(name) for name in SELECTED) + ")$")
for exclusion in EXCLUSIONS:
    backend_test.exclude(exclusion.pattern)

OnnxBackendNodeModelTest = backend_test.test_cases["OnnxBackendNodeModelTest"]
# BackendTest's skip message names the pattern only; give every excluded test its reason.
for _name in SELECTED:
    _why = suite.excluded_by(_name, EXCLUSIONS)
    if _why is not None:
        setattr(OnnxBackendNodeModelTest, _name,
                unittest.skip(f"excluded ({suite.EXCLUDED_FILE.name}:{_why.line}): {_why.reason}")(lambda self: None))
# The other node tests of the installed onnx use operators woodpecker does not import: leave them out of the class
# rather than report hundreds of "no matched include pattern" skips.
for _name in list(vars(OnnxBackendNodeModelTest)):
    if _name.startswith("test_") and _name not in SELECTED:
        delattr(OnnxBackendNodeModelTest, _name)


def test_every_exclusion_matches_a_supported_test():
    """A stale exclusion (the test was renamed, or the op is no longer imported) must be removed, not kept."""
    supported = suite.supported_node_tests()
    stale = [f"line {e.line}: {e.pattern}" for e in EXCLUSIONS if not any(e.matches(n) for n in supported)]
    assert not stale, f"exclusions in {suite.EXCLUDED_FILE.name} that match no supported node test: {stale}"


def test_the_suite_is_not_empty():
    assert len(suite.supported_node_tests()) > 800, "the conformance suite lost its tests (onnx changed its loader?)"


def test_symbolic_dims_compiled_at_first_run_with_options_that_fix_shapes():
    """A model with a symbolic dim is compiled at its first run for the fed shapes; input_shapes passed to prepare()
    join them (they used to collide with the backend's own input_shapes argument)."""
    import numpy as np
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["m", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rep = woodpecker.onnx_backend.prepare(model, vendor=False, input_shapes={"b": (1, 3)})
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(rep.run([x, b])[0], x + b)
