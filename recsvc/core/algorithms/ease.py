"""EASE (Steck, 2019): a closed-form linear item-item model.

The item-item weights B minimize ||X - XB||² + λ||B||² with diag(B) = 0, which has the
exact solution B = -P / diag(P) for P = (XᵀX + λI)⁻¹. It is strong on small and mid-sized
catalogs; the dense items × items matrix bounds it to those (`max_items`).

A user's scores are their history row times B, so anonymous sessions and users with new
events are scored the same way as trained users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    ItemRelation,
    Reason,
    Recommender,
    Relation,
    TrainingData,
    UserBatch,
    expect_finite,
    expect_shape,
)
from recsvc.core.algorithms.forms import Form, RowSums

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


def interaction_gram(user_items: sp.csr_matrix) -> np.ndarray:
    """XᵀX for the binary matrix X (who touched what), float64 items × items."""
    binary = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    binary.data = (binary.data > 0).astype(np.float64)
    binary.eliminate_zeros()
    return np.asarray((binary.T @ binary).todense(), dtype=np.float64)


class EASEParams(AlgorithmParams):
    # Relative: λ = regularization × mean item count (the mean of diag(XᵀX)), so one
    # default fits a 400-user shop and a 400,000-user one.
    regularization: float = Field(16.0, gt=0, description="times the mean item count")
    max_items: int = Field(10_000, ge=0, description="above: not fitted (dense items²)")


class EASE(Recommender):
    name = "ease"
    Params = EASEParams
    form = Form.ROW_SUMS
    reason = Reason.ANCHORED
    relation = Relation.BOUGHT_TOGETHER
    relation_priority = 0
    start_weight = 1.0
    similar_weight = 1.0
    follows_weighting = False  # who touched what, whatever the weights and decay
    walk = "regularization"
    params: EASEParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.weights = np.zeros((0, 0), dtype=np.float32)

    @classmethod
    def usable(cls, params: AlgorithmParams, data: TrainingData) -> str | None:
        limit = params.max_items if isinstance(params, EASEParams) else 0
        if not 0 < data.n_items <= limit:
            return f"{data.n_items:,} items is outside 1..{limit:,} (ease.max_items)"
        return None

    @classmethod
    def prepare(cls, data: TrainingData) -> np.ndarray:
        return interaction_gram(data.user_items)

    def fit(self, data: TrainingData) -> Self:
        return self.fit_prepared(self.prepare(data))

    def fit_prepared(self, prepared: np.ndarray) -> Self:
        """Fit from XᵀX (`prepare`), which does not depend on λ."""
        gram = prepared
        n = gram.shape[0]
        if n == 0:
            self.weights = np.zeros((0, 0), dtype=np.float32)
            return self
        diag = np.diag(gram)
        lam = self.params.regularization * max(float(diag.mean()), 1.0)
        g = gram.copy()
        g[np.diag_indices(n)] += lam
        with threadpool_limits(limits=None, user_api="blas"):
            p = np.linalg.inv(g)
        b = p / (-np.diag(p))[np.newaxis, :]
        b[np.diag_indices(n)] = 0.0
        self.weights = b.astype(np.float32)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> RowSums:
        history = sp.csr_matrix(batch.history, dtype=np.float32, copy=True)
        history.data = (history.data > 0).astype(np.float32)
        return RowSums(history, self.weights)

    def similar(self, items: np.ndarray) -> np.ndarray:
        return np.asarray(self.weights[np.asarray(items)], dtype=np.float32)

    def item_relation(self) -> ItemRelation:
        return ItemRelation(dense=np.asarray(self.weights))

    def check(self, n_users: int, n_items: int) -> None:
        expect_shape("ease.weights", self.weights, (n_items, n_items))
        expect_finite("ease.weights", self.weights)

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.weights", self.weights)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.weights = stored.array(f"{prefix}.weights")
