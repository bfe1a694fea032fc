"""Metrics against hand-computed values, including short lists and few relevant items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.metrics import ranking_metrics


def relevant(rows: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    r = [i for i, items in enumerate(rows) for _ in items]
    c = [j for items in rows for j in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def test_hand_computed_case() -> None:
    ranked = [np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([7])]
    rel = relevant([[2, 9], [], [7]])  # user 1 has nothing relevant: left out
    m = ranking_metrics(ranked, rel, k=3)
    # user 0: hit at rank 2 of 2 relevant; user 2: one item listed, a hit at rank 1.
    assert m["precision@3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert m["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    ndcg0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert m["ndcg@3"] == pytest.approx((ndcg0 + 1) / 2)
    assert m["map@3"] == pytest.approx(((1 / 2) / 2 + 1) / 2)
    assert m["hit_rate@3"] == 1.0
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1) / 2)


def test_perfect_and_empty() -> None:
    ranked = [np.array([0, 1]), np.array([], dtype=np.int64)]
    m = ranking_metrics(ranked, relevant([[0, 1], [3]]), k=2)
    assert m["ndcg@2"] == pytest.approx(0.5)  # 1 for the first user, 0 for the empty list
    assert m["precision@2"] == pytest.approx(0.5)
