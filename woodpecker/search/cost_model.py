"""A learned cost model that ranks candidates before they are measured (XGBoost on knob features).

Features of a point: each numeric knob as log2(value), each categorical knob one-hot, plus the register-tile
size (product of tile knobs). Target: log(seconds). The model is refit after every batch once it has seen
`min_points` successful measurements; until then `ready` is False and searchers ignore it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from woodpecker.space.space import Point, SearchSpace


def features(space: SearchSpace, point: Point) -> list[float]:
    out: list[float] = []
    tile = 1.0
    for knob in space.knobs:
        v = point[knob.name]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(math.log2(float(v) + 1.0))
            if knob.name.startswith("tile_"):
                tile *= float(v)
        else:
            out.extend(1.0 if v == choice else 0.0 for choice in knob.values)
    out.append(math.log2(tile + 1.0))
    return out


class CostModel:
    def __init__(self, min_points: int = 16, seed: int = 0) -> None:
        self.min_points = min_points
        self.seed = seed
        self._x: list[list[float]] = []
        self._y: list[float] = []
        self._model = None

    @property
    def ready(self) -> bool:
        return self._model is not None

    def update(self, space: SearchSpace, points: Sequence[Point], costs: Sequence[float]) -> None:
        for p, c in zip(points, costs):
            if math.isfinite(c) and c > 0:
                self._x.append(features(space, p))
                self._y.append(math.log(c))
        if len(self._y) < self.min_points:
            return
        import xgboost  # the native API: the scikit-learn wrapper would need scikit-learn

        data = xgboost.DMatrix(np.asarray(self._x), label=np.asarray(self._y))
        params = {"max_depth": 4, "eta": 0.2, "subsample": 0.9, "seed": self.seed, "nthread": 1, "verbosity": 0,
                  "objective": "reg:squarederror"}
        self._model = xgboost.train(params, data, num_boost_round=80)

    def predict(self, space: SearchSpace, points: Sequence[Point]) -> list[float]:
        """Predicted seconds of each point (lower is better)."""
        if self._model is None or not points:
            return [0.0] * len(points)
        import xgboost

        x = xgboost.DMatrix(np.asarray([features(space, p) for p in points]))
        return [float(math.exp(v)) for v in self._model.predict(x)]
