"""The roofline's memory ceiling: the multi-stream read kernel sums what numpy sums, and the measured bandwidth is
at least the copy's (the larger of the two is kept)."""

import numpy as np
import tvm

from woodpecker.hw import peak


def test_stream_sum_reads_every_stream_of_every_chunk():
    shape = (4, 3, 37, 16)  # chunks, streams, rows (odd), lanes
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ex = peak._stream_sum(2, shape)
    y = tvm.runtime.empty(shape[:2] + shape[3:], "float32", tvm.cpu())
    ex["main"](tvm.runtime.tensor(x), y)
    np.testing.assert_allclose(y.numpy(), x.sum(axis=2), rtol=1e-5, atol=1e-4)


def test_measured_bandwidth_is_the_larger_of_the_read_and_the_copy(monkeypatch):
    monkeypatch.setattr(peak, "_read_bandwidth_gbs", lambda threads: 63.0)
    monkeypatch.setattr(peak, "_copy_bandwidth_gbs", lambda: 22.7)
    monkeypatch.setattr(peak, "_fma_kernel_gflops", lambda threads, lanes=64: 200.0)
    monkeypatch.setattr(peak, "_sgemm_gflops", lambda: 150.0)
    assert peak.measure_here(2).bandwidth_gbs == 63.0
    monkeypatch.setattr(peak, "_read_bandwidth_gbs", lambda threads: 10.0)
    assert peak.measure_here(2).bandwidth_gbs == 22.7


def test_read_bandwidth_of_a_small_buffer_is_a_finite_rate():
    rate = peak._read_bandwidth_gbs(1, nbytes=4 << 20)
    assert np.isfinite(rate) and rate > 0
