"""The calibration suite's references: inputs rebuilt from their seed, outputs kept whole or as a fixed sample."""

from __future__ import annotations

import numpy as np

from woodpecker.devicekit import suite


def test_inputs_are_rebuilt_identically_from_the_seed():
    shapes = [[2, 3], [4]]
    assert suite.inputs_digest(suite.regenerate_inputs(shapes)) == suite.inputs_digest(suite.regenerate_inputs(shapes))
    assert suite.inputs_digest(suite.regenerate_inputs(shapes, seed=1)) != suite.inputs_digest(
        suite.regenerate_inputs(shapes))


def test_small_outputs_are_kept_whole_and_large_ones_sampled():
    small = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert "index" not in suite.reference_sample(small)
    big = np.random.default_rng(0).standard_normal(suite.FULL_OUTPUT_ELEMENTS + 1).astype(np.float32)
    sample = suite.reference_sample(big)
    assert sample["index"].size == suite.SAMPLE_ELEMENTS and sample["index"].dtype == np.int32
    assert suite.sample_error(big, sample) == 0.0


def test_a_wrong_output_is_caught_by_the_sample():
    big = np.random.default_rng(0).standard_normal((1, 1024, 1024)).astype(np.float32)
    sample = suite.reference_sample(big)
    assert suite.sample_error(big * 1.01, sample) > 1e-3
    assert suite.sample_error(np.full_like(big, np.nan), sample) == float("inf")
    assert suite.sample_error(big[:, :10], suite.reference_sample(big[:, :20])) == float("inf")  # wrong shape
