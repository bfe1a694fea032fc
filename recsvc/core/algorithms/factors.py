"""Matrix factorization with `implicit`: ALS (default) or BPR.

Users unknown to the model, or with events newer than it, are folded in: their vector is
the ALS least-squares solution against the fixed item factors (the same step ALS takes
during training), so the service needs no training library to personalize fresh sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    Reason,
    Recommender,
    TrainingData,
    UserBatch,
    confidence,
    expect_finite,
    expect_shape,
    padded,
)
from recsvc.core.algorithms.forms import Form

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


class FactorParams(AlgorithmParams):
    algorithm: Literal["als", "bpr"] = "als"
    factors: int = Field(64, ge=1)
    regularization: float = Field(0.05, ge=0)
    alpha: float = Field(2.0, gt=0)
    iterations: int = Field(15, ge=1)
    learning_rate: float = Field(0.01, gt=0, description="BPR only")
    random_state: int = 42


class MatrixFactorization(Recommender):
    name = "cf"
    Params = FactorParams
    form = Form.DENSE
    reason = Reason.ANCHORED
    start_weight = 1.0
    params: FactorParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.user_factors = np.zeros((0, self.params.factors), dtype=np.float32)
        self.item_factors = np.zeros((0, self.params.factors), dtype=np.float32)
        self._gram: np.ndarray | None = None

    @classmethod
    def draw(cls, rng: np.random.Generator, params: AlgorithmParams) -> dict[str, Any]:
        """Factors, regularization, alpha and iterations (learning rate for BPR), each
        over the range where implicit's defaults sit in the middle."""
        drawn: dict[str, Any] = {
            "factors": int(rng.choice([16, 32, 64, 128])),
            "regularization": float(np.round(10 ** rng.uniform(-3, 0.5), 4)),
            "alpha": float(np.round(10 ** rng.uniform(-0.5, 1.6), 3)),
            "iterations": int(rng.choice([10, 15, 25])),
            "learning_rate": 0.01,
        }
        if isinstance(params, FactorParams) and params.algorithm == "bpr":
            drawn["learning_rate"] = float(np.round(10 ** rng.uniform(-2.5, -1), 4))
            drawn["iterations"] = int(rng.choice([50, 100, 200]))
        return drawn

    def fit(self, data: TrainingData) -> Self:
        # Imported here: the service scores without implicit. Imported before limiting
        # BLAS, so that any BLAS library it loads is limited too.
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        matrix = confidence(data.user_items)
        p = self.params
        # implicit warns (when built, and rightly) unless BLAS is single-threaded: its own
        # threads do the work.
        with threadpool_limits(limits=1, user_api="blas"):
            if p.algorithm == "als":
                model = AlternatingLeastSquares(
                    factors=p.factors, regularization=p.regularization, alpha=p.alpha,
                    iterations=p.iterations, random_state=p.random_state,
                )
            else:
                model = BayesianPersonalizedRanking(
                    factors=p.factors, learning_rate=p.learning_rate,
                    regularization=p.regularization, iterations=p.iterations,
                    random_state=p.random_state,
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
        base = self.gram + self.params.regularization * np.eye(k)
        for row in range(history.shape[0]):
            lo, hi = history.indptr[row], history.indptr[row + 1]
            if lo == hi:
                continue
            idx = history.indices[lo:hi]
            conf = self.params.alpha * history.data[lo:hi].astype(np.float64)
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

    def score_at(self, batch: UserBatch, items: np.ndarray) -> np.ndarray:
        return self.user_vectors(batch) @ np.asarray(self.item_factors)[items].T

    def similar(self, items: np.ndarray) -> np.ndarray:
        v = np.asarray(self.item_factors)
        norms = np.linalg.norm(v, axis=1)
        norms[norms == 0] = 1.0
        q = v[items] / norms[items, None]
        return (q @ v.T) / norms[None, :]

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        # No events, no factors: zero rows (VᵀV, and so fold-in, stay as they are).
        out = self._copy()
        out.item_factors = padded(self.item_factors, len(rows))
        return out

    def check(self, n_users: int, n_items: int) -> None:
        # implicit's BPR learns an item bias as one more factor (the users' is 1).
        k = self.params.factors + (1 if self.params.algorithm == "bpr" else 0)
        expect_shape("cf.user_factors", self.user_factors, (n_users, k))
        expect_shape("cf.item_factors", self.item_factors, (n_items, k))
        expect_finite("cf.user_factors", self.user_factors)
        expect_finite("cf.item_factors", self.item_factors)

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.user_factors", self.user_factors)
        out.save_array(f"{prefix}.item_factors", self.item_factors)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.user_factors = stored.array(f"{prefix}.user_factors")
        self.item_factors = stored.array(f"{prefix}.item_factors")
