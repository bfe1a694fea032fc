"""Metrics against hand-computed values, including short lists and few relevant items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tests.oracle import rank
from training.metrics import beyond_accuracy, ranking_metrics


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


def test_f1_and_fewer_relevant_items_than_k() -> None:
    # One relevant item, found at rank 1 of 5: precision 1/5, recall 1, NDCG and MAP 1.
    m = ranking_metrics([np.array([3, 0, 1, 2, 4])], relevant([[3]]), k=5)
    assert m["precision@5"] == pytest.approx(0.2)
    assert m["recall@5"] == 1.0
    assert m["f1@5"] == pytest.approx(2 * 0.2 * 1 / 1.2)
    assert m["ndcg@5"] == 1.0 and m["map@5"] == 1.0
    # Two relevant, found at ranks 2 and 4: AP = (1/2 + 2/4) / 2; IDCG over 2 hits.
    m = ranking_metrics([np.array([0, 5, 1, 6, 2])], relevant([[5, 6]]), k=5)
    assert m["map@5"] == pytest.approx(0.5)
    idcg = 1 + 1 / np.log2(3)
    assert m["ndcg@5"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / idcg)
    assert m["f1@5"] == pytest.approx(2 * 0.4 * 1.0 / 1.4)


def test_unseen_relevant_items_count_in_recall() -> None:
    # The user bought 3 items; one is not in the model's catalog and can never be hit.
    m = ranking_metrics([np.array([1, 2])], relevant([[1, 2]]), k=2, n_relevant=np.array([3]))
    assert m["recall@2"] == pytest.approx(2 / 3)
    assert m["precision@2"] == 1.0
    assert m["ndcg@2"] == 1.0  # the ideal list holds min(k, 3) = 2 hits


def test_ties_rank_by_item_number_so_metrics_are_reproducible() -> None:
    scores = np.array([[0.5, 1.0, 0.5, 0.5, 0.5, 0.2]], dtype=np.float32)
    for _ in range(5):
        assert list(rank(scores, 3).items[0]) == [1, 0, 2]
    wide = np.zeros((4, 2000), dtype=np.float32)
    wide[:, 1999] = 1.0
    top = rank(wide, 5).items
    assert all(list(row) == [1999, 0, 1, 2, 3] for row in top)
    m = ranking_metrics(rank(scores, 3).items, relevant([[2]]), k=3)
    assert m["mrr@3"] == pytest.approx(1 / 3)


def test_beyond_accuracy_hand_computed() -> None:
    popularity = np.array([50, 30, 10, 5, 0, 0, 0, 0, 0, 0] * 10)  # 100 items
    category = np.array([0, 0, 1, -1] + [2] * 96)
    ranked = [np.array([0, 1, 2]), np.array([0, 3, 4])]
    m = beyond_accuracy(ranked, 3, popularity, n_users=99, item_category=category)
    assert m["coverage@3"] == pytest.approx(5 / 100)
    # List 1: categories 0, 0, 1 -> 2 of 3 pairs differ. List 2: 0, (none), 2 -> 1 of 1.
    assert m["diversity@3"] == pytest.approx((2 / 3 + 1) / 2)
    info = -np.log2((np.array([50, 30, 10, 50, 5, 0]) + 1) / 100)
    assert m["novelty@3"] == pytest.approx(info.mean())
    # The top 1% of 100 items is item 0 (popularity 50; ties go to the lower number).
    assert m["popular_share@3"] == pytest.approx(2 / 6)
