"""A user's own past: items bought again and again score high. Whether this source is
used at all (repeat buying) is decided by tuning on a time-based split."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recsvc.artifacts import StoredVersion
from recsvc.models.base import ArraySink, Recommender, TrainingData, UserBatch
from recsvc.models.factors import confidence


class PurchaseHistory(Recommender):
    kind = "history"

    def params(self) -> dict[str, Any]:
        return {}

    def fit(self, data: TrainingData) -> Self:
        return self  # the history itself arrives with each batch

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).toarray()

    def score_compact(self, batch: UserBatch) -> sp.csr_matrix:
        return confidence(batch.history)

    def save(self, out: ArraySink, prefix: str) -> None:
        return None

    @classmethod
    def load(cls, stored: StoredVersion, prefix: str, params: dict[str, Any]) -> Self:
        return cls(**params)
