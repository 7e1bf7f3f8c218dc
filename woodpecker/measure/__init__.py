"""Measurement: build candidates in worker processes, run them in an isolated runner, check them numerically."""
