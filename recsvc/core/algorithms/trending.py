"""What is selling now: event weights in a recent window, decayed fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np
from pydantic import Field

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    Reason,
    Recommender,
    TrainingData,
    UserBatch,
    expect_finite,
    expect_shape,
    logged,
    padded,
)
from recsvc.core.algorithms.forms import Form, SharedRows
from recsvc.core.clock import SECONDS_PER_DAY

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


class TrendingParams(AlgorithmParams):
    window_days: float = Field(14.0, gt=0)
    half_life_days: float = Field(3.0, gt=0)


class Trending(Recommender):
    name = "trending"
    Params = TrendingParams
    form = Form.SHARED_ROWS
    reason = Reason.TRENDING
    start_weight = 0.1
    cold_start_weight = 0.5
    learns_from_events = True
    params: TrendingParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.trend = np.zeros(0, dtype=np.float32)

    def scores(self) -> np.ndarray:
        """log1p of the trend, the scale every ranking by trend uses."""
        return logged(self, "trend")

    def fit(self, data: TrainingData) -> Self:
        age_days = (data.reference_time - data.event_times) / SECONDS_PER_DAY
        recent = (age_days <= self.params.window_days) & (data.event_weights > 0)
        weights = data.event_weights[recent] * np.power(
            0.5, age_days[recent] / self.params.half_life_days)
        self.trend = np.bincount(
            data.event_items[recent], weights=weights, minlength=data.n_items
        ).astype(np.float32)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> SharedRows:
        return SharedRows(self.scores()[None, :], np.zeros(len(batch), dtype=np.int64))

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        out.trend = padded(self.trend, len(rows))
        return out

    def check(self, n_users: int, n_items: int) -> None:
        expect_shape("trending.trend", self.trend, (n_items,))
        expect_finite("trending.trend", self.trend)

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.trend", self.trend)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.trend = stored.array(f"{prefix}.trend")
