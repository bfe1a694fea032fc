"""Item-item neighbours (implicit's cosine or BM25 kNN): related items, and scores for
anonymous sessions from the items just viewed."""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsvc.artifacts import StoredVersion
from recsvc.models.base import (
    ArraySink,
    Recommender,
    RowSums,
    TrainingData,
    UserBatch,
    load_csr,
    save_csr,
)
from recsvc.models.factors import confidence


class ItemKNN(Recommender):
    kind = "item_knn"

    def __init__(self, measure: str = "cosine", neighbours: int = 100) -> None:
        if measure not in ("cosine", "bm25"):
            raise ValueError(f"unknown item-item measure {measure!r}")
        self.measure = measure
        self.neighbours = int(neighbours)
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {"measure": self.measure, "neighbours": self.neighbours}

    def fit(self, data: TrainingData) -> Self:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        from implicit.utils import ParameterWarning

        # +1: implicit counts the item itself among its neighbours; we drop it below so
        # that repeat purchases are the history model's job, not this one's.
        k = self.neighbours + 1
        model = CosineRecommender(K=k) if self.measure == "cosine" else BM25Recommender(K=k)
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            # implicit transposes our CSR into COO internally, then warns about its own copy.
            warnings.simplefilter("ignore", category=ParameterWarning)
            model.fit(confidence(data.user_items), show_progress=False)
        sim = sp.csr_matrix(model.similarity, dtype=np.float32)
        sim.setdiag(0)
        sim.eliminate_zeros()
        n = data.n_items
        if sim.shape != (n, n):  # implicit sizes it by the largest item seen
            sim = sp.csr_matrix((sim.data, sim.indices, sim.indptr[: n + 1]), shape=(n, n))
        self.similarity = sim
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> RowSums:
        return RowSums(confidence(batch.history), self.similarity)

    def similar(self, items: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity[items].todense(), dtype=np.float32)

    def save(self, out: ArraySink, prefix: str) -> None:
        save_csr(out, f"{prefix}.similarity", self.similarity)

    @classmethod
    def load(cls, stored: StoredVersion, prefix: str, params: dict[str, Any]) -> Self:
        model = cls(**params)
        model.similarity = load_csr(stored, f"{prefix}.similarity")
        return model
