"""Measured kernels (features, registers, seconds) -> fitted Efficiency factors and the model's rank
agreement.

The fit minimizes sum_i (log T_model(features_i; eff) - log T_measured_i)^2 over the logarithms of the
efficiency factors (bounded to [0.05, 4]), with scipy's least_squares from a few starting points (the model is
a max of terms, so the objective is piecewise smooth). Factors of terms that never set a kernel's time stay
where they start.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from woodpecker.sim.gpu.features import KernelFeatures
from woodpecker.sim.gpu.model import Efficiency, GpuDevice, estimate

BOUNDS = (0.05, 4.0)


@dataclasses.dataclass(frozen=True)
class Sample:
    features: tuple[KernelFeatures, ...]  # the kernels of one measured candidate
    registers: Mapping[str, int] | None  # ptxas counts per kernel, if known
    measured_s: float


@dataclasses.dataclass(frozen=True)
class FitResult:
    efficiency: Efficiency
    rms_log_error_before: float  # root mean square of log(model / measured) with Efficiency()
    rms_log_error_after: float
    kendall_tau_before: float  # rank agreement of model and measurement
    kendall_tau_after: float


def predict(samples: Sequence[Sample], device: GpuDevice, eff: Efficiency) -> list[float]:
    return [estimate(s.features, device, s.registers, eff).seconds for s in samples]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    if len(a) < 2:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def fit_efficiency(
    samples: Sequence[Sample], device: GpuDevice, names: Sequence[str] = Efficiency.NAMES
) -> FitResult:
    """Fit the factors `names` (others stay 1.0) to the measured times."""
    import numpy as np
    from scipy.optimize import least_squares

    if not samples:
        raise ValueError("no measured kernels to fit")
    measured = np.log([s.measured_s for s in samples])

    def eff_of(theta) -> Efficiency:
        return Efficiency(**{n: float(math.exp(t)) for n, t in zip(names, theta)})

    def residuals(theta):
        return np.log(predict(samples, device, eff_of(theta))) - measured

    lo, hi = math.log(BOUNDS[0]), math.log(BOUNDS[1])
    best = None
    for start in (0.0, -0.7, -1.6):
        theta0 = np.full(len(names), start)
        r = least_squares(residuals, theta0, bounds=(lo, hi), diff_step=0.05, max_nfev=400)
        if best is None or r.cost < best.cost:
            best = r
    assert best is not None
    before = predict(samples, device, Efficiency())
    after = predict(samples, device, eff_of(best.x))
    meas = [s.measured_s for s in samples]

    def rms(pred):
        return float(np.sqrt(np.mean((np.log(pred) - measured) ** 2)))

    return FitResult(
        eff_of(best.x), rms(before), rms(after), kendall_tau(before, meas), kendall_tau(after, meas)
    )
