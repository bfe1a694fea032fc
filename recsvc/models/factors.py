"""Matrix factorization with `implicit`: ALS (default) or BPR.

Users unknown to the model, or with events newer than it, are folded in: their vector is
the ALS least-squares solution against the fixed item factors (the same step ALS takes
during training), so the service needs no training library to personalize fresh sessions.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsvc.artifacts import StoredVersion
from recsvc.models.base import ArraySink, Recommender, TrainingData, UserBatch


def confidence(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """Compress raw confidences so that a wholesaler's 500 units do not drown all else."""
    out = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    np.log1p(out.data, out=out.data)
    return out


class MatrixFactorization(Recommender):
    kind = "factors"

    def __init__(
        self,
        algorithm: str = "als",
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        learning_rate: float = 0.01,
        random_state: int = 42,
    ) -> None:
        if algorithm not in ("als", "bpr"):
            raise ValueError(f"unknown factorization algorithm {algorithm!r}")
        self.algorithm = algorithm
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.learning_rate = float(learning_rate)
        self.random_state = int(random_state)
        self.user_factors = np.zeros((0, self.factors), dtype=np.float32)
        self.item_factors = np.zeros((0, self.factors), dtype=np.float32)
        self._gram: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
            "random_state": self.random_state,
        }

    def fit(self, data: TrainingData) -> Self:
        # Imported here: the service scores without implicit. Imported before limiting
        # BLAS, so that any BLAS library it loads is limited too.
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        matrix = confidence(data.user_items)
        # implicit warns (when built, and rightly) unless BLAS is single-threaded: its own
        # threads do the work.
        with threadpool_limits(limits=1, user_api="blas"):
            if self.algorithm == "als":
                model = AlternatingLeastSquares(
                    factors=self.factors, regularization=self.regularization,
                    alpha=self.alpha, iterations=self.iterations,
                    random_state=self.random_state,
                )
            else:
                model = BayesianPersonalizedRanking(
                    factors=self.factors, learning_rate=self.learning_rate,
                    regularization=self.regularization, iterations=self.iterations,
                    random_state=self.random_state,
                )
            model.fit(matrix, show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._gram = None
        return self

    @property
    def gram(self) -> np.ndarray:
        if self._gram is None:
            v = np.asarray(self.item_factors, dtype=np.float64)
            self._gram = v.T @ v
        return self._gram

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """ALS user step: x = (VᵀV + Vᵀ(C−I)V + λI)⁻¹ VᵀCp for each history row."""
        history = confidence(history)
        v = np.asarray(self.item_factors, dtype=np.float64)
        k = v.shape[1]
        out = np.zeros((history.shape[0], k), dtype=np.float32)
        base = self.gram + self.regularization * np.eye(k)
        for row in range(history.shape[0]):
            lo, hi = history.indptr[row], history.indptr[row + 1]
            if lo == hi:
                continue
            idx = history.indices[lo:hi]
            conf = self.alpha * history.data[lo:hi].astype(np.float64)
            vi = v[idx]
            a = base + (vi.T * conf) @ vi
            b = vi.T @ (1.0 + conf)
            out[row] = np.linalg.solve(a, b)
        return out

    def user_vectors(self, batch: UserBatch) -> np.ndarray:
        vectors = np.zeros((len(batch), self.item_factors.shape[1]), dtype=np.float32)
        known = batch.users >= 0
        if known.any():
            vectors[known] = self.user_factors[batch.users[known]]
        if (~known).any():
            vectors[~known] = self.fold_in(batch.history[np.flatnonzero(~known)])
        return vectors

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.user_vectors(batch) @ np.asarray(self.item_factors).T

    def similar(self, items: np.ndarray) -> np.ndarray:
        v = np.asarray(self.item_factors)
        norms = np.linalg.norm(v, axis=1)
        norms[norms == 0] = 1.0
        q = v[items] / norms[items, None]
        return (q @ v.T) / norms[None, :]

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.user_factors", self.user_factors)
        out.save_array(f"{prefix}.item_factors", self.item_factors)

    @classmethod
    def load(cls, stored: StoredVersion, prefix: str, params: dict[str, Any]) -> Self:
        model = cls(**params)
        model.user_factors = stored.array(f"{prefix}.user_factors")
        model.item_factors = stored.array(f"{prefix}.item_factors")
        return model
