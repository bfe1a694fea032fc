"""Algorithms in isolation: fold-in, content features, popularity, blending, ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsvc.core.algorithms import (
    EASE,
    ContentModel,
    MatrixFactorization,
    Popularity,
    PurchaseHistory,
    TrainingData,
    Trending,
    UserBatch,
)
from recsvc.core.algorithms.base import confidence
from recsvc.core.algorithms.content import (
    Vocabulary,
    category_tokens,
    normalize,
    price_edges,
)
from recsvc.core.algorithms.ease import interaction_gram
from recsvc.core.algorithms.forms import RowSums, SharedRows
from recsvc.core.algorithms.history import prior_strength
from recsvc.core.ranking.kernel import blend_rank
from recsvc.core.ranking.scoring import blend_and_rank
from recsvc.core.ranking.topn import top_n
from tests.oracle import blend, rank, standardization, standardize


def random_data(seed: int = 0, users: int = 200, items: int = 50) -> TrainingData:
    m = sp.random(users, items, density=0.1, format="csr", dtype=np.float32,
                  random_state=seed) * 10
    n = m.nnz
    return TrainingData(user_items=sp.csr_matrix(m), event_users=np.zeros(n, np.int64),
                        event_items=np.zeros(n, np.int64), event_weights=np.ones(n, np.float32),
                        event_times=np.zeros(n, np.int64), reference_time=0)


def test_fold_in_matches_implicits_own_user_step() -> None:
    data = random_data()
    mf = MatrixFactorization(factors=8, regularization=0.1, alpha=2.0, iterations=10).fit(data)
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=2.0)
    als.item_factors = np.asarray(mf.item_factors)
    als.user_factors = np.asarray(mf.user_factors)
    rows = np.flatnonzero(np.diff(data.user_items.indptr) > 0)[:5]
    ours = mf.fold_in(data.user_items[rows])
    with threadpool_limits(1, "blas"):
        theirs = als.recalculate_user(rows, confidence(data.user_items[rows]))
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert (cos > 0.99).all(), cos
    # A user with no history folds in to the zero vector: no personal signal.
    assert not mf.fold_in(sp.csr_matrix((1, data.n_items), dtype=np.float32)).any()


def test_category_paths_share_their_parents() -> None:
    assert category_tokens("Home > Kitchen > Knives") == [
        "cat:home", "cat:home > kitchen", "cat:home > kitchen > knives"]
    assert category_tokens("Home/Garden") == ["cat:home", "cat:home > garden"]
    assert category_tokens("") == []


def test_price_bands_are_quantiles_and_unknown_prices_have_none() -> None:
    prices = [1, 2, 3, 4, 100, None, "n/a", -1]
    edges = price_edges(pd.Series(prices), bands=2)
    assert edges.tolist() == pytest.approx([np.log(3)])  # the median
    vocabulary = Vocabulary(*(np.zeros(0, "<U1"),) * 2, np.zeros(0, "<U1"),
                            np.zeros(0, "<U1"), edges)
    bands = vocabulary.price([1, 2, 3, 4, 100, np.nan, -1])
    assert bands.indices.tolist() == [0, 0, 0, 1, 1]  # unknown prices: no band at all
    assert np.diff(bands.indptr).tolist() == [1, 1, 1, 1, 1, 0, 0]


def test_content_vectors_weigh_text_category_brand_and_price() -> None:
    items = pd.DataFrame({
        "title": ["red kettle", "red kettle", "blue tent", "camping stove", ""],
        "category": ["Kitchen > Kettles", "Kitchen > Kettles", "Outdoor > Tents",
                     "Outdoor > Stoves", "Kitchen > Pans"],
        "brand": ["acme", "other", "acme", "camp", None],
        "price": [20, 20, 200, 50, None],
    })
    model = ContentModel()
    vectors = model.vectorize(items)
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    model.item_vectors = vectors
    sim = model.similar(np.array([0, 2, 4]))
    assert np.argsort(-sim[0])[1] == 1  # same title, category and price; other brand
    assert sim[1, 3] > sim[1, 0]  # tent: the other outdoor item beats the kettle
    assert sim[2, 0] > sim[2, 2]  # an untitled pan shares 'Kitchen' with the kettles only


def test_the_saved_vocabulary_encodes_as_training_did() -> None:
    """New items and search queries are encoded by the saved vocabulary, without
    scikit-learn: its TF-IDF equals scikit-learn's transform (the oracle), and a new row
    equal to a training row gets that row's vector."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    items = pd.DataFrame({
        "title": ["Red kettle, red!", "steel kettle", "blue tent", "camping stove", "tent"],
        "description": ["boils water fast", "", "sleeps two", "the stove for camping", ""],
        "tags": ["kitchen|sale", "kitchen", "outdoor;sale", "outdoor", None],
        "category": ["Kitchen > Kettles", "Kitchen > Kettles", "Outdoor > Tents",
                     "Outdoor > Stoves", "Outdoor"],
        "brand": ["Acme", "other", "acme", "camp", None],
        "price": [20, 25, 200, 50, None],
    })
    model = ContentModel()
    vectors = model.vectorize(items)
    texts = ["a Red KETTLE for camping, unseen words", "sale sale sale tent", ""]
    oracle = TfidfVectorizer(sublinear_tf=True, stop_words="english", dtype=np.float32)
    oracle.fit(items["title"] + " " + items["description"].fillna("") + " "
               + items["tags"].fillna("").str.replace(r"[|;,]", " ", regex=True))
    np.testing.assert_allclose(model.vocabulary.text(texts).toarray(),
                               oracle.transform(texts).toarray(), rtol=1e-5, atol=1e-7)
    again = model.encode(items.iloc[[3, 0]].to_dict("records"))
    np.testing.assert_allclose(again.toarray(), vectors[[3, 0]].toarray(), rtol=1e-5,
                               atol=1e-7)
    model.item_vectors = vectors
    # "tent" alone (item 4) beats "camping" twice (3) and "blue tent" (2); the kettles
    # match nothing of it.
    found, scores = model.match("camping tent", 5)
    assert found.tolist() == [4, 3, 2] and (np.diff(scores) < 0).all()
    assert model.match("kettle", 5)[0].tolist() == [1, 0]  # the shorter text first
    assert model.match("zebra", 3)[0].size == 0 and model.match("", 3)[0].size == 0


def test_content_scores_through_item_similarity_equal_the_profiles_route(monkeypatch) -> None:
    import recsvc.core.algorithms.content as content

    model = ContentModel()
    model.item_vectors = normalize(sp.random(30, 12, density=0.3, format="csr",
                                             dtype=np.float32, random_state=3))
    history = sp.random(5, 30, density=0.2, format="csr", dtype=np.float32,
                        random_state=4) * 3
    batch = UserBatch(users=np.full(5, -1), history=sp.csr_matrix(history))
    assert model.item_similarity is not None  # a 30-item catalog: the small-catalog route
    small = model.score(batch)
    monkeypatch.setattr(content, "ITEM_SIMILARITY_MAX", 10)
    assert model.item_similarity is None
    np.testing.assert_allclose(small, model.score(batch), atol=1e-6)


def test_normalize_rows() -> None:
    m = sp.csr_matrix(np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 3.0]]))
    np.testing.assert_allclose(normalize(m).toarray(), [[0.6, 0.8], [0, 0],
                                                        [1 / 10**0.5, 3 / 10**0.5]], rtol=1e-6)
    np.testing.assert_allclose(normalize(m, "l1").toarray()[2], [0.25, 0.75])
    repeated = sp.csr_matrix((np.array([1.0, 1.0, 2.0], np.float32), np.array([0, 0, 1]),
                              np.array([0, 3])), shape=(1, 2))  # (0, 0) stored twice
    np.testing.assert_allclose(normalize(repeated).toarray(), [[2 / 8**0.5, 2 / 8**0.5]],
                               rtol=1e-6)


def test_popularity_counts_people_not_units_and_groups() -> None:
    # Item 0: one wholesaler with a huge confidence; item 1: three ordinary buyers.
    m = sp.csr_matrix(np.array([[1000.0, 0], [0, 5], [0, 5], [0, 5]], dtype=np.float32))
    data = random_data()
    data.user_items = m
    data.user_attributes = {"segment": (np.array([0, 1, 1, 1]), ["pro", "home"])}
    pop = Popularity(attributes=["segment"]).fit(data)
    assert pop.overall[1] > pop.overall[0]
    assert pop.group_scores("segment", 0)[0] > pop.group_scores("segment", 0)[1]


def test_trending_favours_recent_events() -> None:
    day = 86_400
    data = random_data(items=3)
    data.event_items = np.array([0, 0, 0, 1, 2])
    data.event_weights = np.ones(5, np.float32)
    data.event_times = np.array([0, 0, 0, 29 * day, 10 * day])
    data.reference_time = 30 * day
    trend = Trending(window_days=14, half_life_days=3).fit(data).trend
    assert trend[1] > 0 and trend[0] == 0 and trend[2] == 0  # old events are out of window
    assert trend[1] == pytest.approx(0.5 ** (1 / 3))


def test_standardize_and_blend() -> None:
    a = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    z = standardize(a)
    np.testing.assert_allclose(z[0], [-1.2247449, 0, 1.2247449], rtol=1e-5)
    assert not z[1].any()  # no spread, no signal
    b = np.array([[3.0, 2.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(blend({"a": a, "b": b}, {"a": 1.0, "b": 1.0})[0], 0, atol=1e-6)
    np.testing.assert_allclose(blend({"a": a, "b": b}, {"a": 2.0, "b": 0.0}), 2 * z)


def _unsorted(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same matrix with each row's entries reversed, as a sparse product leaves them."""
    out = matrix.copy()
    for row in range(matrix.shape[0]):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        out.indices[lo:hi] = matrix.indices[lo:hi][::-1]
        out.data[lo:hi] = matrix.data[lo:hi][::-1]
    out.has_sorted_indices = False
    return out


@pytest.mark.parametrize("items", [300, 5000])  # item-kNN rows cover much / little of it
def test_blend_rank_of_every_score_form_equals_numpy_blend_and_rank(items: int) -> None:
    """The compiled blend (`recsvc.core.ranking.kernel`, what `recommend` runs) takes every compact
    form and gives the ranking, scores, per-source parts and statistics that plain numpy
    gives from the dense equivalents: z-scores per row, weighted sum, boosts, -inf for
    what may not be listed, the history excluded, top n."""
    rng = np.random.default_rng(4)
    users = 40
    dense = rng.standard_normal((users, items)).astype(np.float32)
    rows = rng.random((3, items)).astype(np.float32) * 5
    shared = SharedRows(rows, rng.integers(0, 3, users))
    history = sp.random(users, items, density=0.02, format="csr", dtype=np.float32,
                        random_state=1) * 4
    dense_ish = sp.random(users, items, density=0.5, format="csr", dtype=np.float32,
                          random_state=2)
    one_row = SharedRows(rows[1:2], np.zeros(users, dtype=np.int64))  # like trending
    item_item = rng.standard_normal((items, items)).astype(np.float32)  # like EASE
    neighbours = sp.random(items, items, density=20 / items, format="csr", dtype=np.float32,
                           random_state=3)  # like item-kNN: 20 a row
    past = sp.random(users, items, density=8 / items, format="csr", dtype=np.float32,
                     random_state=5) * 3
    compact = {"d": dense, "s": shared, "h": _unsorted(history), "k": dense_ish, "t": one_row,
               "e": RowSums(past, item_item), "n": RowSums(_unsorted(past), neighbours)}
    plain = {"d": dense, "s": shared.dense(), "h": history.toarray(), "k": dense_ish.toarray(),
             "t": one_row.dense(), "e": np.asarray(past @ item_item),
             "n": (past @ neighbours).toarray()}
    weights = {"d": 1.0, "s": 0.3, "h": 2.0, "k": 0.5, "t": 0.7, "e": 1.5, "n": 0.8, "x": 0.0}
    per_item = (rng.random(items) * 0.1).astype(np.float32)
    per_item[rng.random(items) < 0.2] = -np.inf  # out of stock, excluded by a rule
    z = {name: standardize(plain[name]) for name in plain}
    expected = sum(w * z[name] for name, w in weights.items() if name in z) + per_item
    reference = rank(expected, 25, history=past)

    out = blend_rank(compact, weights, 25, per_item, past)
    # The kernel keeps its buffers between calls: another blend in between (other item-kNN
    # rows, other users) must leave nothing behind.
    # Four CSR sources: slots 0-3, where this blend has CSR sources too.
    between = {"a": history, "b": RowSums(history, neighbours), "c": dense_ish,
               "e": RowSums(past, neighbours)}
    blend_rank(between, dict.fromkeys(between, 1.0), 5, per_item, None)
    again = blend_rank(compact, weights, 25, per_item, past)
    np.testing.assert_array_equal(again.items, out.items)
    np.testing.assert_array_equal(again.scores, out.scores)
    np.testing.assert_array_equal(out.items, reference.padded_items)
    np.testing.assert_array_equal(out.lengths, reference.lengths)
    np.testing.assert_allclose(out.scores, reference.padded_scores, atol=1e-4)
    at = np.maximum(out.items, 0)
    for name, w in weights.items():
        if w == 0:
            assert name not in out.contributions
            continue
        np.testing.assert_allclose(out.contributions[name],
                                   w * np.take_along_axis(z[name], at, axis=1), atol=1e-4)
        scale, shift = out.standardization[name]
        std = plain[name].astype(np.float64).std(axis=1)
        expected_scale = np.where(std > 0, w / np.where(std > 0, std, 1), 0.0)  # flat: 0
        np.testing.assert_allclose(scale, expected_scale, rtol=1e-5)
        np.testing.assert_allclose(shift, expected_scale * plain[name].mean(axis=1), rtol=1e-4)


def test_blend_rank_keeps_the_variance_of_a_row_far_from_zero() -> None:
    """A row far from zero with a tiny spread (float32 moments would cancel to noise)
    and a row with no spread at all (no signal: contributes nothing)."""
    row = (1000.0 + np.array([0.0, 0.001, 0.002, 0.003] * 50)).astype(np.float32)
    flat = np.full(200, 7.0, dtype=np.float32)
    out = blend_rank({"a": np.stack([row, flat])}, {"a": 1.0}, 3, np.zeros(200, np.float32),
                     None)
    scale, shift = out.standardization["a"]
    exact = row.astype(np.float64)
    assert scale[0] == pytest.approx(1 / exact.std(), rel=1e-6)
    assert shift[0] == pytest.approx(exact.mean() / exact.std(), rel=1e-6)
    assert scale[1] == 0 and shift[1] == 0
    assert list(out.items[1]) == [0, 1, 2]  # all equal: by item number


def test_top_n_breaks_ties_by_item_number_and_lists_finite_scores_only() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        rows, width = int(rng.integers(1, 12)), int(rng.integers(1, 700))
        scores = rng.integers(-3, 4, size=(rows, width)).astype(np.float32)
        scores[rng.random((rows, width)) < 0.3] = -np.inf
        scores[rng.random((rows, width)) < 0.02] = np.inf
        scores[rng.random((rows, width)) < 0.02] = np.nan
        scores[scores == 0] = np.where(rng.random(int((scores == 0).sum())) < 0.5, 0.0, -0.0)
        n = int(rng.integers(0, width + 3))
        items, top, lengths = top_n(scores, n)
        for r in range(rows):
            finite = np.flatnonzero(np.isfinite(scores[r]))
            want = finite[np.lexsort((finite, -scores[r, finite]))][:n]
            assert lengths[r] == want.size
            np.testing.assert_array_equal(items[r, :want.size], want)
            np.testing.assert_array_equal(top[r, :want.size], scores[r, want])
            assert (items[r, want.size:] == -1).all() and (top[r, want.size:] == 0).all()


def test_each_algorithms_compact_scores_are_its_scores() -> None:
    from recsvc.core.algorithms import ItemKNN, PurchaseHistory

    data = random_data(seed=5, users=60, items=40)
    codes = np.arange(60) % 3 - 1  # -1: unknown segment
    data.user_attributes = {"segment": (codes, ["pro", "home"])}
    data.event_items = np.arange(data.user_items.nnz) % 40
    batch = UserBatch(users=np.arange(10), history=data.user_items[:10],
                      attributes={"segment": codes[:10]})
    def as_dense(compact):  # noqa: ANN001, ANN202
        return (compact.dense() if isinstance(compact, SharedRows | RowSums)
                else compact.toarray() if sp.issparse(compact) else compact)

    for model in (Popularity(attributes=["segment"]), Trending(), PurchaseHistory(),
                  ItemKNN(neighbours=10), EASE()):
        model.fit(data)
        np.testing.assert_allclose(as_dense(model.score_compact(batch)), model.score(batch),
                                   rtol=1e-6, err_msg=model.name)
    knn = ItemKNN(neighbours=10).fit(data).score_compact(batch)
    assert isinstance(knn, RowSums) and sp.issparse(knn.matrix)  # its neighbour lists
    shared = Popularity(attributes=["segment"]).fit(data).score_compact(batch)
    assert isinstance(shared, SharedRows) and shared.rows.shape[0] == 3  # one row a segment


def test_standardization_stays_exact_where_float32_would_blur_the_variance() -> None:
    """A row far from zero with a tiny spread: float32 moments would cancel to noise;
    those rows are redone in float64."""
    row = (1000.0 + np.array([0.0, 0.001, 0.002, 0.003] * 50)).astype(np.float32)
    flat = np.full(200, 7.0, dtype=np.float32)
    scale, shift = standardization(np.stack([row, flat]))
    exact = row.astype(np.float64)
    assert scale[0] == pytest.approx(1 / exact.std(), rel=1e-6)
    assert shift[0] == pytest.approx(exact.mean() / exact.std(), rel=1e-6)
    assert scale[1] == 0 and shift[1] == 0  # no spread: no signal


def test_rank_filters_and_orders() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7]], dtype=np.float32)
    history = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=np.float32))
    allowed = np.array([True, True, True, False])
    r = rank(scores, 3, history=history, allowed=allowed)
    assert list(r.items[0]) == [2, 0]  # 1 was bought, 3 is not allowed: only two left
    assert list(r.scores[0]) == pytest.approx([0.5, 0.1])
    r = rank(scores, 10)
    assert list(r.items[0]) == [1, 3, 2, 0]


def test_ease_weights_are_the_closed_form_of_each_items_ridge_regression() -> None:
    """Column j of B solves min ||X_j - X_{-j} b||² + λ||b||² (Steck, 2019), with B_jj = 0."""
    data = random_data(seed=3, users=120, items=12)
    model = EASE(regularization=0.5).fit(data)
    x = (data.user_items.toarray() > 0).astype(np.float64)
    gram = x.T @ x
    lam = 0.5 * gram.diagonal().mean()
    for j in range(12):
        rest = [i for i in range(12) if i != j]
        expected = np.linalg.solve(gram[np.ix_(rest, rest)] + lam * np.eye(11), gram[rest, j])
        np.testing.assert_allclose(model.weights[rest, j], expected, rtol=1e-4, atol=1e-6)
        assert model.weights[j, j] == 0


def test_ease_recovers_two_taste_groups_and_scores_anonymous_sessions() -> None:
    # Users 0-49 buy from items 0-4, users 50-99 from items 5-9, each all but one item.
    rows, cols = [], []
    for u in range(100):
        group = range(0, 5) if u < 50 else range(5, 10)
        for i in group:
            if i != (u % 5) + (0 if u < 50 else 5):
                rows.append(u)
                cols.append(i)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(100, 10))
    data = TrainingData(user_items=matrix, event_users=np.zeros(0, np.int64),
                        event_items=np.zeros(0, np.int64), event_weights=np.zeros(0, np.float32),
                        event_times=np.zeros(0, np.int64), reference_time=0)
    model = EASE(regularization=0.1).fit(data)
    session = sp.csr_matrix(([1.0, 1.0], ([0, 0], [5, 6])), shape=(1, 10), dtype=np.float32)
    scores = model.score(UserBatch(users=np.array([-1]), history=session))[0]
    top = rank(scores[None, :], 3, history=session).items[0]
    assert set(top) <= {7, 8, 9}
    related = model.similar(np.array([0]))[0]
    assert related[1:5].min() > related[5:].max()


def test_ease_for_a_large_catalog_is_the_exact_solution_when_every_item_is_a_neighbour() -> None:
    """Above `max_items` each column is fitted on its most co-occurring items alone; with
    every other item a neighbour that is the exact closed form, column for column."""
    data = random_data(seed=9, users=80, items=30)
    data.user_items = sp.csr_matrix(sp.random(80, 30, density=0.6, format="csr",
                                              dtype=np.float32, random_state=9))
    assert (interaction_gram(data.user_items) > 0).all()  # every pair co-occurs
    exact = EASE(regularization=2.0).fit(data)
    sparse = EASE(regularization=2.0, max_items=0, neighbours=29).fit(data)
    assert sp.issparse(sparse.weights) and not sp.issparse(exact.weights)
    np.testing.assert_allclose(sparse.weights.toarray(), exact.weights, atol=1e-5)
    narrow = EASE(regularization=2.0, max_items=0, neighbours=5).fit(data)
    assert (np.diff(sp.csc_matrix(narrow.weights).indptr) <= 5).all()
    assert narrow.weights.diagonal().sum() == 0  # an item never speaks for itself
    batch = UserBatch(users=np.arange(10), history=data.user_items[:10])
    np.testing.assert_allclose(narrow.score_compact(batch).dense(), narrow.score(batch))


def test_a_source_row_with_nan_or_inf_counts_for_nothing_rather_than_blanking_the_list() -> None:
    """A source whose row for a user holds a NaN or an infinity (a broken fold fit, say)
    adds nothing for that user: the list is the one the other sources give, for that
    user only; before, the NaN spread into every score and the list came back empty."""
    rng = np.random.default_rng(9)
    good = rng.standard_normal((3, 50)).astype(np.float32)
    broken = rng.standard_normal((3, 50)).astype(np.float32)
    broken[0, 7] = np.nan
    broken[1, 3] = np.inf
    candidates = np.ones(50, dtype=bool)
    both = blend_and_rank({"a": good, "b": broken}, {"a": 1.0, "b": 1.0}, 10, candidates)
    alone = blend_and_rank({"a": good}, {"a": 1.0}, 10, candidates)
    together = blend_and_rank({"a": good, "b": broken[2:3].repeat(3, axis=0)},
                              {"a": 1.0, "b": 1.0}, 10, candidates)
    for user in (0, 1):
        assert both.items[user].tolist() == alone.items[user].tolist()
        assert np.isfinite(both.scores[user]).all()
    assert both.items[2].tolist() == together.items[2].tolist()


def test_history_puts_what_buyers_buy_again_above_what_they_buy_once() -> None:
    """Item 0 is a staple (its 20 buyers each bought it on two days), item 1 a one-off
    (20 buyers, once each). A shopper who bought each once, equally recently, is
    offered the staple first; with no purchases at all (ratings) items count alike."""
    users, items, days = [], [], []
    for u in range(20):
        users += [u, u, u + 20]
        items += [0, 0, 1]
        days += [1, 30, 1]
    users += [40, 40]
    items += [0, 1]
    days += [40, 40]
    n = len(users)
    u, i = np.array(users), np.array(items)
    matrix = sp.csr_matrix((np.ones(n, np.float32), (u, i)), shape=(41, 2))
    data = TrainingData(user_items=matrix, event_users=u, event_items=i,
                        event_weights=np.ones(n, np.float32),
                        event_times=np.array(days) * 86_400, reference_time=41 * 86_400,
                        event_bought=np.ones(n, np.int8))
    history = PurchaseHistory(repeat_prior=5.0).fit(data)
    shopper = UserBatch(users=np.array([40]), history=matrix[[40]])
    scores = history.score(shopper)[0]
    assert scores[0] > scores[1] > 0
    # 20 of 42 buyers bought again: the shop's rate s = 20/42; the staple's, shrunk by 5
    # pseudo-buyers, (20 + 5s) / (21 + 5), the one-off's 5s / 26, each over s.
    s = 20 / 42
    assert history.repeat_rate.tolist() == pytest.approx([(20 + 5 * s) / 26 / s, 5 / 26])
    ratings = TrainingData(user_items=matrix, event_users=u, event_items=i,
                           event_weights=np.ones(n, np.float32),
                           event_times=np.array(days) * 86_400, reference_time=41 * 86_400,
                           event_bought=np.zeros(n, np.int8))
    alike = PurchaseHistory().fit(ratings)
    assert alike.repeat_rate is None
    assert alike.score(shopper)[0].tolist() == pytest.approx([np.log1p(1.0)] * 2)
    # Left to the data, the staple and the one-off differ far beyond chance: the shop's
    # rate is worth almost nothing against their own 21 buyers each.
    learned = PurchaseHistory().fit(data).repeat_rate
    assert learned[0] > 1.9 and learned[1] < 0.1


def test_how_much_items_differ_in_repeat_buying_is_learned_not_assumed() -> None:
    """Empirical Bayes: items whose repeat rates differ only as much as sampling makes
    them differ are all alike (no prior could be strong enough); items that truly differ
    get a prior worth a few buyers."""
    rng = np.random.default_rng(3)
    buyers = np.full(400, 60.0)
    alike = rng.binomial(60, 0.3, size=400).astype(np.float64)  # one true rate
    assert prior_strength(buyers, alike) > 100  # or infinite: sampling explains it all
    rates = np.where(np.arange(400) % 2 == 0, 0.6, 0.1)  # two kinds of item
    differ = rng.binomial(60, rates).astype(np.float64)
    # True spread: variance 0.0625 around 0.35, a beta of strength 0.35 x 0.65 / 0.0625
    # - 1 = 2.6 pseudo-buyers.
    assert prior_strength(buyers, differ) == pytest.approx(2.64, abs=0.5)


def test_what_was_bought_is_scored_by_occasions_and_what_was_looked_at_by_confidence(
) -> None:
    """Row 0 bought item 0 once in bulk (confidence 500) and item 1 on three days
    (confidence 3), and only viewed item 2: occasions put item 1 above item 0, where
    confidences would put item 0 first; item 2 keeps its confidence. Row 1 bought
    nothing: what it touched, by confidence."""
    history = sp.csr_matrix(np.array([[500.0, 3.0, 2.0], [0.0, 0.0, 4.0]], np.float32))
    bought = sp.csr_matrix(np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0]], np.float32))
    model = PurchaseHistory()
    model.repeat_rate = None
    by_occasions = model.score(UserBatch(users=np.array([0, 1]), history=history,
                                         bought=bought))
    assert np.allclose(by_occasions, [[1.0, 3.0, np.log1p(2.0)], [0, 0, np.log1p(4.0)]])
    unknown = model.score(UserBatch(users=np.array([0, 1]), history=history))
    assert unknown[0, 0] > unknown[0, 1]  # models without occasions: as before
    model.repeat_rate = np.array([1.0, 0.2, 1.0], np.float32)  # item 1 a one-off after all
    assert model.score(UserBatch(users=np.array([0]), history=history[[0]],
                                 bought=bought[[0]]))[0].tolist() == pytest.approx(
        [1.0, 0.6, np.log1p(2.0)])
    # A purchase whose confidence was cancelled (a later dislike, say) is still one.
    lone = model.score(UserBatch(users=np.array([0]),
                                 history=sp.csr_matrix(np.array([[0, 2.0, 0]], np.float32)),
                                 bought=sp.csr_matrix(np.array([[1.5, 0, 0]], np.float32))))
    assert lone[0].tolist() == pytest.approx([1.5, 0.2 * np.log1p(2.0), 0])
