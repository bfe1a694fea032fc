"""Item-item neighbours (implicit's cosine or BM25 kNN): related items, and scores for
anonymous sessions from the items just viewed."""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Self

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
    confidence,
    expect_csr,
    padded,
)
from recsvc.core.algorithms.forms import Form, RowSums

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


class ItemKNNParams(AlgorithmParams):
    measure: Literal["cosine", "bm25"] = "cosine"
    neighbours: int = Field(100, ge=1)


class ItemKNN(Recommender):
    name = "item_knn"
    Params = ItemKNNParams
    form = Form.ROW_SUMS
    reason = Reason.ANCHORED
    relation = Relation.BOUGHT_TOGETHER
    relation_priority = 1
    start_weight = 0.5
    similar_weight = 1.0
    params: ItemKNNParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> Self:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        from implicit.utils import ParameterWarning

        # +1: implicit counts the item itself among its neighbours; we drop it below so
        # that repeat purchases are the history model's job, not this one's.
        k = self.params.neighbours + 1
        model = (CosineRecommender(K=k) if self.params.measure == "cosine"
                 else BM25Recommender(K=k))
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
        self.__dict__.pop("_relation", None)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> RowSums:
        return RowSums(confidence(batch.history), self.similarity)

    def similar(self, items: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity[items].todense(), dtype=np.float32)

    @cached_property
    def _relation(self) -> ItemRelation:
        return ItemRelation.sparse(self.similarity)

    def item_relation(self) -> ItemRelation:
        return self._relation

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        out.similarity = padded(self.similarity, len(rows), axes=(0, 1))
        return out

    def check(self, n_users: int, n_items: int) -> None:
        expect_csr("item_knn.similarity", self.similarity, (n_items, n_items))

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_csr(f"{prefix}.similarity", self.similarity)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.similarity = stored.csr(f"{prefix}.similarity")
