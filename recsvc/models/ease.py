"""EASE (Steck, 2019): a closed-form linear item-item model.

The item-item weights B minimize ||X - XB||² + λ||B||² with diag(B) = 0, which has the
exact solution B = -P / diag(P) for P = (XᵀX + λI)⁻¹. It is strong on small and mid-sized
catalogs; the dense items × items matrix bounds it to those (`max_items` in the trainer).

A user's scores are their history row times B, so anonymous sessions and users with new
events are scored the same way as trained users.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsvc.artifacts import StoredVersion
from recsvc.models.base import ArraySink, Recommender, RowSums, TrainingData, UserBatch


def interaction_gram(user_items: sp.csr_matrix) -> np.ndarray:
    """XᵀX for the binary matrix X (who touched what), float64 items × items."""
    binary = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    binary.data = (binary.data > 0).astype(np.float64)
    binary.eliminate_zeros()
    return np.asarray((binary.T @ binary).todense(), dtype=np.float64)


class EASE(Recommender):
    kind = "ease"

    def __init__(self, regularization: float = 1.0) -> None:
        """`regularization` is relative: λ = regularization × mean item count (the mean of
        diag(XᵀX)), so one default fits a 400-user shop and a 400,000-user one."""
        if regularization <= 0:
            raise ValueError("EASE regularization must be positive")
        self.regularization = float(regularization)
        self.weights = np.zeros((0, 0), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {"regularization": self.regularization}

    def fit(self, data: TrainingData) -> Self:
        return self.fit_gram(interaction_gram(data.user_items))

    def fit_gram(self, gram: np.ndarray) -> Self:
        """Fit from a precomputed XᵀX (the tuner reuses one across λ values)."""
        n = gram.shape[0]
        if n == 0:
            self.weights = np.zeros((0, 0), dtype=np.float32)
            return self
        diag = np.diag(gram)
        lam = self.regularization * max(float(diag.mean()), 1.0)
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

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.weights", self.weights)

    @classmethod
    def load(cls, stored: StoredVersion, prefix: str, params: dict[str, Any]) -> Self:
        model = cls(**params)
        model.weights = stored.array(f"{prefix}.weights")
        return model
