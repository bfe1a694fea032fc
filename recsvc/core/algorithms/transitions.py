"""What comes next: directional item-to-item transitions learned from each shopper's
ordered history, scored from the shopper's last few items.

T[a, b] sums, over every shopper who touched b within `window` steps after a, a weight
`distance_decay ** (steps - 1)` times the age decay of that event (half-life
`half_life_days` before the end of the data); consecutive events on one item count as
one step. Each row keeps its `neighbours` strongest successors and is scaled to sum to
one (the chance of each next step). A shopper's scores are Σ_l recency_decay ** l ×
T[recent_l] over their `recent` last items (newest first): an anonymous visitor's come
from the session, a known shopper's from their stored last items and fresh events.
Its reason names the recent item the pick most often followed ("next after X")."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    ItemRelation,
    Reason,
    Recommender,
    TrainingData,
    UserBatch,
    expect_csr,
    padded,
)
from recsvc.core.algorithms.forms import Form, RowSums
from recsvc.core.clock import SECONDS_PER_DAY

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


class TransitionParams(AlgorithmParams):
    window: int = Field(3, ge=1, le=10, description="steps ahead counted as what came next")
    distance_decay: float = Field(0.5, gt=0, le=1, description="per step beyond the first")
    half_life_days: float = Field(180.0, gt=0, description="age decay of a transition")
    neighbours: int = Field(100, ge=1, description="successors kept per item")
    recent: int = Field(3, ge=1, le=5, description="a shopper's last items that score")
    recency_decay: float = Field(0.5, gt=0, le=1, description="per item further back")


def sequences(users: np.ndarray, items: np.ndarray, times: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events in each shopper's order (by time; ties in the given order), with
    consecutive events on one item merged into the first: (users, items, times)."""
    order = np.lexsort((np.arange(users.size), times, users))
    users, items, times = users[order], items[order], times[order]
    step = np.ones(users.size, dtype=bool)
    step[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    return users[step], items[step], times[step]


class Transitions(Recommender):
    name = "next"
    Params = TransitionParams
    form = Form.ROW_SUMS
    reason = Reason.SEQUENCE
    start_weight = 0.5
    follows_weighting = False  # the order of events, whatever their weights
    learns_from_events = True
    params: TransitionParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.successors = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> Self:
        p = self.params
        positive = data.event_weights > 0
        users, items, times = sequences(data.event_users[positive],
                                        data.event_items[positive],
                                        data.event_times[positive])
        age = np.power(0.5, (data.reference_time - times) / (p.half_life_days * SECONDS_PER_DAY))
        rows, cols, weights = [], [], []
        for steps in range(1, p.window + 1):
            same = users[steps:] == users[:-steps]
            moved = same & (items[steps:] != items[:-steps])
            rows.append(items[:-steps][moved])
            cols.append(items[steps:][moved])
            weights.append(p.distance_decay ** (steps - 1) * age[steps:][moved])
        n = data.n_items
        counts = sp.csr_matrix((np.concatenate(weights) if weights else np.zeros(0),
                                (np.concatenate(rows) if rows else np.zeros(0, int),
                                 np.concatenate(cols) if cols else np.zeros(0, int))),
                               shape=(n, n), dtype=np.float64)  # duplicates are summed
        self.successors = strongest_per_row(counts, p.neighbours)
        self.__dict__.pop("_relation", None)
        return self

    def recent_weights(self, batch: UserBatch) -> sp.csr_matrix:
        """Batch x items: each shopper's last `recent` items, newest weighing most."""
        recent = batch.recent
        n = self.successors.shape[0]
        if recent is None or recent.size == 0:
            return sp.csr_matrix((len(batch), n), dtype=np.float32)
        recent = np.asarray(recent)[:, :self.params.recent]
        weight = np.power(self.params.recency_decay, np.arange(recent.shape[1]),
                          dtype=np.float64)
        rows, cols = np.nonzero(recent >= 0)
        matrix = sp.csr_matrix((np.broadcast_to(weight, recent.shape)[rows, cols],
                                (rows, recent[rows, cols])), shape=(len(batch), n),
                               dtype=np.float32)
        matrix.sum_duplicates()
        return matrix

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> RowSums:
        return RowSums(self.recent_weights(batch), self.successors)

    def similar(self, items: np.ndarray) -> np.ndarray:
        return np.asarray(self.successors[np.asarray(items)].todense(), dtype=np.float32)

    @cached_property
    def _relation(self) -> ItemRelation:
        return ItemRelation.sparse(self.successors)

    def item_relation(self) -> ItemRelation:
        return self._relation

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        out.successors = padded(self.successors, len(rows), axes=(0, 1))
        return out

    def check(self, n_users: int, n_items: int) -> None:
        expect_csr("next.successors", self.successors, (n_items, n_items))

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_csr(f"{prefix}.successors", self.successors)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.successors = stored.csr(f"{prefix}.successors")


def strongest_per_row(counts: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row's `keep` largest entries, scaled to sum to one (float32 CSR)."""
    counts = sp.csr_matrix(counts)
    counts.sum_duplicates()
    lengths = np.diff(counts.indptr)
    if lengths.size and lengths.max() > keep:
        row = np.repeat(np.arange(counts.shape[0]), lengths)
        order = np.lexsort((-counts.data, row))  # by row, strongest first
        rank = np.arange(order.size) - counts.indptr[row[order]]
        chosen = np.sort(order[rank < keep])
        counts = sp.csr_matrix((counts.data[chosen], (row[chosen], counts.indices[chosen])),
                               shape=counts.shape)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    counts = sp.csr_matrix(sp.diags(scale) @ counts, dtype=np.float32)
    counts.sort_indices()
    return counts
