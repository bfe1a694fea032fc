"""Ranking metrics at k, from ranked item lists and sets of relevant items.

Definitions (docs/metrics.md): precision@k = hits in the top k / k; recall@k = hits /
number of relevant items; NDCG@k with binary gain and log2 discount, ideal DCG over
min(k, relevant) hits; MAP@k = sum of precision at each hit / min(k, relevant);
hit rate = share of users with at least one hit; MRR = 1 / rank of the first hit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")


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


def ranking_metrics(
    ranked: Sequence[np.ndarray], relevant: sp.csr_matrix, k: int
) -> dict[str, float]:
    """Each metric averaged over users that have at least one relevant item."""
    relevant = sp.csr_matrix(relevant)
    n_relevant = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant > 0)
    if users.size == 0:
        return {f"{m}@{k}": 0.0 for m in METRICS}
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
    return {
        f"precision@{k}": float(np.mean(n_hits / k)),
        f"recall@{k}": float(np.mean(n_hits / n_rel)),
        f"ndcg@{k}": float(np.mean(dcg / ideal)),
        f"map@{k}": float(np.mean(ap)),
        f"hit_rate@{k}": float(np.mean(n_hits > 0)),
        f"mrr@{k}": float(np.mean(rr)),
    }
