"""A user's own past: items bought again and again score high. Whether this source is
used at all (repeat buying) is decided by the data and then by tuning.

Items differ in how often they are bought again (paper towels, not a sofa): each
item's repeat rate, the share of its buyers who bought it on two or more days, shrunk
towards the shop's rate by as many pseudo-buyers as the items' real spread warrants
(empirical Bayes: none of it where items differ no more than chance), scales the
shopper's purchase occasions of it (each day they bought it, decayed with age; see
`UserBatch.bought`), or, for an item they did not buy, their confidence in it.
Without purchases (a ratings set, say), or where items do not really differ, every item
counts alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    Reason,
    Recommender,
    ShopFacts,
    TrainingData,
    UserBatch,
    confidence,
    expect_finite,
    expect_shape,
)
from recsvc.core.algorithms.forms import Form
from recsvc.core.clock import SECONDS_PER_DAY

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


class HistoryParams(AlgorithmParams):
    repeat_prior: float | None = Field(
        None, ge=0, description="pseudo-buyers at the shop's repeat rate each item's own "
        "rate is shrunk towards; None: estimated from how much items really differ")


def prior_strength(buyers: np.ndarray, again: np.ndarray) -> float:
    """How many pseudo-buyers the shop's rate is worth (empirical Bayes, a beta-binomial
    by the method of moments): the spread of the items' rates beyond what sampling
    alone gives is their true spread; none beyond it, infinite (items alike)."""
    seen = buyers > 0
    n, k = buyers[seen], again[seen]
    total = n.sum()
    if n.size < 2 or total <= 0:
        return np.inf
    p = k.sum() / total
    if not 0 < p < 1:
        return np.inf
    spread = float(np.sum(n * (k / n - p) ** 2))  # expected (items - 1) p (1 - p) by chance
    between = (spread - (n.size - 1) * p * (1 - p)) / (total - np.sum(n * n) / total)
    if between <= 0:
        return np.inf
    return max(p * (1 - p) / between - 1.0, 0.0)


def repeat_rates(users: np.ndarray, items: np.ndarray, days: np.ndarray, n_items: int,
                 prior: float | None) -> np.ndarray | None:
    """Each item's share of buyers who bought it on two or more days, shrunk towards the
    shop's share by `prior` pseudo-buyers (None: `prior_strength`), over the shop's
    share; None without purchases, or where items do not differ beyond chance."""
    if users.size == 0:
        return None
    buyers, again = repeat_counts(users, items, days, n_items)
    return rates_from_counts(buyers, again, prior)


def repeat_counts(users: np.ndarray, items: np.ndarray, days: np.ndarray, n_items: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per item: how many shoppers bought it, and how many of them on two or more days."""
    order = np.lexsort((days, items, users))
    users, items, days = users[order], items[order], days[order]
    new_pair = np.ones(users.size, dtype=bool)
    new_pair[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    new_day = new_pair.copy()
    new_day[1:] |= days[1:] != days[:-1]
    pair_of = np.cumsum(new_pair) - 1
    days_per_pair = np.bincount(pair_of[new_day], minlength=int(new_pair.sum()))
    pair_items = items[new_pair]
    buyers = np.bincount(pair_items, minlength=n_items).astype(np.float64)
    again = np.bincount(pair_items, weights=days_per_pair > 1, minlength=n_items)
    return buyers, again


def rates_from_counts(buyers: np.ndarray, again: np.ndarray, prior: float | None
                      ) -> np.ndarray | None:
    """`repeat_rates` from the per-item counts (`repeat_counts`)."""
    n_items = buyers.size
    shop = again.sum() / max(buyers.sum(), 1.0)
    if shop <= 0:
        return None  # nobody buys anything twice: nothing to tell items apart
    if prior is None:
        prior = prior_strength(buyers, again)
    if not np.isfinite(prior):
        return None
    pooled = buyers + prior
    rate = np.divide(again + prior * shop, pooled, out=np.full(n_items, shop),
                     where=pooled > 0)
    return (rate / shop).astype(np.float32)  # 1: as likely to be bought again as most


def with_entries(scores: sp.csr_matrix, entries: sp.csr_matrix) -> sp.csr_matrix:
    """`scores` with `entries`' values in place of its own wherever `entries` has one.
    In place where every entry is already a stored score (the usual case: one list
    must not pay for sparse algebra, ~0.3 ms a request)."""
    scores.sort_indices()
    n = np.int64(scores.shape[1])
    keys = _keys(scores, n)
    wanted = _keys(entries, n)
    at = np.minimum(np.searchsorted(keys, wanted), max(keys.size - 1, 0))
    if keys.size and (keys[at] == wanted).all():
        scores.data[at] = entries.data
        return scores
    out = sp.csr_matrix(scores - scores.multiply(entries.astype(bool)) + entries,
                        dtype=np.float32)
    out.eliminate_zeros()
    return out


def _keys(matrix: sp.csr_matrix, n: np.int64) -> np.ndarray:
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows * n + matrix.indices


class PurchaseHistory(Recommender):
    name = "history"
    Params = HistoryParams
    form = Form.SPARSE
    reason = Reason.OWN_PAST
    learns_from_events = True
    params: HistoryParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.repeat_rate: np.ndarray | None = None  # relative to the shop's; None: alike

    @classmethod
    def starting_weight(cls, facts: ShopFacts) -> float:
        # In a shop where people reorder (groceries, supplies) their own history is the
        # best signal; elsewhere it only repeats what they have.
        return 1.0 if facts.repeat_buying else 0.0

    def fit(self, data: TrainingData) -> Self:
        self.repeat_rate = None
        if data.event_bought is not None:
            bought = data.event_bought > 0
            self.repeat_rate = repeat_rates(
                data.event_users[bought], data.event_items[bought],
                data.event_times[bought] // int(SECONDS_PER_DAY), data.n_items,
                self.params.repeat_prior)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).toarray()

    def score_compact(self, batch: UserBatch) -> sp.csr_matrix:
        scores = confidence(batch.history)
        if batch.bought is not None and batch.bought.nnz:
            # What the shopper bought is counted in purchase occasions (how many days
            # they bought it, decayed), not by its confidence: that weighs quantities,
            # and volume does not predict a reorder. What they only looked at or put in
            # their cart keeps its confidence.
            scores = with_entries(scores, sp.csr_matrix(batch.bought, dtype=np.float32))
        if self.repeat_rate is not None:
            scores.data *= self.repeat_rate[scores.indices]
        return scores

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        if self.repeat_rate is not None:  # nobody bought them yet: the shop's rate
            out.repeat_rate = np.concatenate([self.repeat_rate,
                                              np.ones(len(rows), self.repeat_rate.dtype)])
        return out

    def check(self, n_users: int, n_items: int) -> None:
        if self.repeat_rate is not None:
            expect_shape("history.repeat_rate", self.repeat_rate, (n_items,))
            expect_finite("history.repeat_rate", self.repeat_rate)

    def save(self, out: ArraySink, prefix: str) -> None:
        if self.repeat_rate is not None:
            out.save_array(f"{prefix}.repeat_rate", self.repeat_rate)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        # Models written before repeat rates were learned weigh every item alike.
        self.repeat_rate = (stored.array(f"{prefix}.repeat_rate")
                            if stored.has_array(f"{prefix}.repeat_rate") else None)
