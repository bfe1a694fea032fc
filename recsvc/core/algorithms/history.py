"""A user's own past: items bought again and again score high. Whether this source is
used at all (repeat buying) is decided by the data and then by tuning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    Reason,
    Recommender,
    ShopFacts,
    TrainingData,
    UserBatch,
    confidence,
)
from recsvc.core.algorithms.forms import Form

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


class HistoryParams(AlgorithmParams):
    pass


class PurchaseHistory(Recommender):
    name = "history"
    Params = HistoryParams
    form = Form.SPARSE
    reason = Reason.OWN_PAST

    @classmethod
    def starting_weight(cls, facts: ShopFacts) -> float:
        # In a shop where people reorder (groceries, supplies) their own history is the
        # best signal; elsewhere it only repeats what they have.
        return 1.0 if facts.repeat_buying else 0.0

    def fit(self, data: TrainingData) -> Self:
        return self  # the history itself arrives with each batch

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).toarray()

    def score_compact(self, batch: UserBatch) -> sp.csr_matrix:
        return confidence(batch.history)

    def save(self, out: ArraySink, prefix: str) -> None:
        return None

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        return None
