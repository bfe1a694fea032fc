"""Offline metrics at k, from ranked item lists. Definitions, written out with worked
examples, are in docs/metrics.md; tests check each against hand-computed cases.

Accuracy (per user, then averaged over users with at least one relevant item):
precision@k = hits in the top k / k (a list shorter than k still divides by k);
recall@k = hits / relevant items; F1@k = their harmonic mean (0 without hits);
NDCG@k with binary gain and log2 discount, ideal DCG over min(k, relevant) hits;
MAP@k = sum of precision at each hit / min(k, relevant); hit rate = share of users with
a hit; MRR = 1 / rank of the first hit (0 without one).

Beyond accuracy (over all evaluated users' lists): catalog coverage, intra-list diversity
by category, novelty (mean self-information of recommended items) and the share of
recommendations going to the most popular 1% of items."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

METRICS = ("precision", "recall", "f1", "ndcg", "map", "hit_rate", "mrr")
BEYOND = ("coverage", "diversity", "novelty", "popular_share")
POPULAR_FRACTION = 0.01


def hit_matrix(ranked: Sequence[np.ndarray], relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Bool users x k: is the item at each rank relevant? Short lists are padded."""
    hits = np.zeros((len(ranked), k), dtype=bool)
    relevant = sp.csr_matrix(relevant)
    for row, items in enumerate(ranked):
        items = np.asarray(items[:k], dtype=np.int64)
        if items.size == 0:
            continue
        lo, hi = relevant.indptr[row], relevant.indptr[row + 1]
        hits[row, : items.size] = np.isin(items, relevant.indices[lo:hi])
    return hits


def per_user_metric(ranked: Sequence[np.ndarray], relevant: sp.csr_matrix, k: int,
                    metric: str) -> np.ndarray:
    """One metric (`ndcg@10`, ...) for each user with a relevant item, in row order: what
    `ranking_metrics` averages."""
    return _per_user(ranked, relevant, k)[metric]


def ranking_metrics(
    ranked: Sequence[np.ndarray],
    relevant: sp.csr_matrix,
    k: int,
    n_relevant: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy metrics averaged over users with at least one relevant item.

    `n_relevant` (per user) counts relevant items the matrix cannot hold, such as items
    the model has never seen: they can never be hit but still count in recall's
    denominator. By default it is the matrix's row counts."""
    per_user = _per_user(ranked, relevant, k, n_relevant)
    if not per_user:
        return {f"{m}@{k}": 0.0 for m in METRICS}
    return {name: float(np.mean(values)) for name, values in per_user.items()}


def _per_user(
    ranked: Sequence[np.ndarray],
    relevant: sp.csr_matrix,
    k: int,
    n_relevant: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each accuracy metric for each user with at least one relevant item (empty dict:
    none has)."""
    relevant = sp.csr_matrix(relevant)
    if n_relevant is None:
        n_relevant = np.diff(relevant.indptr)
    n_relevant = np.asarray(n_relevant)
    users = np.flatnonzero(n_relevant > 0)
    if users.size == 0:
        return {}
    hits = hit_matrix([ranked[u] for u in users], relevant[users], k)
    n_rel = n_relevant[users].astype(np.float64)
    n_hits = hits.sum(axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(n_rel, k).astype(int) - 1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at * hits).sum(axis=1) / np.minimum(n_rel, k)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    rr = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    precision = n_hits / k
    recall = n_hits / n_rel
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return {
        f"precision@{k}": precision,
        f"recall@{k}": recall,
        f"f1@{k}": f1,
        f"ndcg@{k}": dcg / ideal,
        f"map@{k}": ap,
        f"hit_rate@{k}": (n_hits > 0).astype(np.float64),
        f"mrr@{k}": rr,
    }


def item_popularity(user_items: sp.csr_matrix) -> np.ndarray:
    """How many training users interacted with each item."""
    return np.bincount(sp.csr_matrix(user_items).indices, minlength=user_items.shape[1])


def most_popular(popularity: np.ndarray, fraction: float) -> np.ndarray:
    """Bool mask of the ceil(fraction x items) most popular items (ties: lower number)."""
    n = popularity.size
    count = min(n, math.ceil(fraction * n))
    order = np.lexsort((np.arange(n), -popularity))
    mask = np.zeros(n, dtype=bool)
    mask[order[:count]] = True
    return mask


def beyond_accuracy(
    ranked: Sequence[np.ndarray],
    k: int,
    popularity: np.ndarray,
    n_users: int,
    item_category: np.ndarray | None = None,
) -> dict[str, float]:
    """Coverage, diversity, novelty and popular share of the top-k lists.

    coverage = distinct recommended items / catalog size; diversity = mean over lists of
    the share of item pairs whose categories differ (items without a category are left
    out; absent when no list has two categorized items); novelty = mean over recommended
    items of -log2((users who had the item + 1) / (training users + 1)); popular_share =
    share of recommended items among the most popular 1% of the catalog."""
    lists = [np.asarray(items[:k], dtype=np.int64) for items in ranked]
    flat = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    n_items = popularity.size
    out: dict[str, float] = {
        f"coverage@{k}": float(np.unique(flat).size / n_items) if n_items else 0.0,
    }
    if item_category is not None:
        shares = []
        for items in lists:
            cats = item_category[items]
            cats = cats[cats >= 0]
            if cats.size < 2:
                continue
            counts = np.unique(cats, return_counts=True)[1].astype(np.float64)
            pairs = cats.size * (cats.size - 1) / 2
            same = float((counts * (counts - 1) / 2).sum())
            shares.append(1.0 - same / pairs)
        if shares:
            out[f"diversity@{k}"] = float(np.mean(shares))
    if flat.size:
        p = (popularity[flat] + 1.0) / (n_users + 1.0)
        out[f"novelty@{k}"] = float(np.mean(-np.log2(p)))
        out[f"popular_share@{k}"] = float(
            most_popular(popularity, POPULAR_FRACTION)[flat].mean())
    return out
