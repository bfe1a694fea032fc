"""Candidate generation (`recsvc.core.ranking.candidates`): exact when the candidates
are the whole catalog, close to exact when they are a few hundred items of thousands,
and built in the background while lists are ranked exactly."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from recsvc.core.algorithms.content import ITEM_SIMILARITY_MAX
from recsvc.core.model import RecommenderModel, load_model
from recsvc.core.ranking import candidates
from recsvc.core.ranking.candidates import CandidatePath, path_for
from recsvc.core.ranking.scoring import recommend
from tests.conftest import quick_config
from training.generate import StoreSpec, generate_store
from training.pipeline import train
from training.progress import Progress

pytest.importorskip("faiss")  # in the dev extra: never skipped in CI


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A store of 5,000 items: above the size where content scores are dense rows."""
    work = tmp_path_factory.mktemp("candidates")
    paths = generate_store(StoreSpec(users=1500, items=5000, events=45_000, seed=4),
                           work / "store", Progress(quiet=True))
    config = quick_config(work / "m", **paths)
    config.model.set("cf", factors=16, iterations=8)
    train(config, Progress(quiet=True))
    return work / "m"


@pytest.fixture(scope="module")
def model(root: Path) -> RecommenderModel:
    loaded = load_model(root)
    assert loaded.n_items > ITEM_SIMILARITY_MAX
    return loaded


def ranked(model: RecommenderModel, users: np.ndarray, path: CandidatePath | None):
    batch = model.batch(users)
    if path is None:
        return recommend(model, batch, 10, explain=True)
    return path.rank(model.components, batch, dict(model.weights), 10,
                     np.asarray(model.item_in_stock, dtype=bool), None,
                     batch.history if model.exclude_seen else None)


def test_dense_sources_score_their_candidates_as_they_score_the_catalog(model) -> None:
    """Every algorithm's `score_at` equals its scores at those items, where it has one;
    `best_items` holds its k best where it has them."""
    batch = model.batch(np.arange(20))
    items = np.sort(np.random.default_rng(1).choice(model.n_items, 300, replace=False))
    dense = set()
    for name, component in model.components.items():
        values = component.score_at(batch, items)
        if values is not None:
            dense.add(name)
            assert np.allclose(values, component.score(batch)[:, items], rtol=1e-4,
                               atol=1e-6), name
        best = component.best_items(batch, 25)
        if best is not None:
            scores = component.score(batch)
            for j in range(len(batch)):  # each shopper's 10 best are among them
                top = np.argsort(-scores[j], kind="stable")[:10]
                assert np.isin(scores[j, top], scores[j, best]).all(), name
    assert dense == {"cf", "content", "popularity"}  # the rest are cheap as they are


def test_with_the_whole_catalog_as_candidates_the_lists_are_exact(model) -> None:
    users = np.arange(0, model.n_users, 7)
    path = CandidatePath.build(model, sample=model.n_items)
    exact = ranked(model, users, None)
    got = ranked(model, users, path)
    same = (exact.padded_items == got.items).all(axis=1)
    assert same.mean() >= 0.99  # a near-tie may swap in float rounding
    assert np.allclose(exact.padded_scores, got.scores, atol=1e-3)
    for name, parts in exact.padded_contributions.items():
        assert np.allclose(parts[same], got.contributions[name][same], atol=1e-3), name


def test_a_few_hundred_candidates_find_the_exact_top_ten(model) -> None:
    users = np.arange(0, model.n_users, 3)
    path = CandidatePath.build(model, sample=500, ann_k=200, top_k=100)
    exact = ranked(model, users, None)
    got = ranked(model, users, path)
    recall = np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max((a >= 0).sum(), 1)
                      for a, b in zip(exact.padded_items, got.items, strict=True)])
    assert recall >= 0.9, recall


def test_the_index_is_built_in_the_background_while_lists_are_exact(
        root: Path, monkeypatch) -> None:
    target = load_model(root)
    monkeypatch.setattr(candidates, "ABOVE", 1000)
    users = np.arange(0, 60)
    before = recommend(target, target.batch(users), 10)  # exact: the path is building
    deadline = time.monotonic() + 300
    while path_for(target) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    path = path_for(target)
    assert isinstance(path, CandidatePath) and path.index is not None
    after = recommend(target, target.batch(users), 10)
    direct = path.rank(target.components, target.batch(users), dict(target.weights), 10,
                       np.asarray(target.item_in_stock, bool), None,
                       target.batch(users).history if target.exclude_seen else None)
    assert np.array_equal(after.padded_items, direct.items)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in
                       zip(before.padded_items, after.padded_items, strict=True)])
    assert overlap >= 0.9
