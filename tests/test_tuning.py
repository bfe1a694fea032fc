"""Tuning: it learns from a time split within its budget, and knows when not to try."""

from __future__ import annotations

import time
from pathlib import Path

from recsvc.model import load_model
from recsvc.models import Popularity, UserBatch
from recsvc.scoring import rank
from tests.conftest import quick_config
from training.catalog import id_universe
from training.generate import StoreSpec, generate_store
from training.metrics import ranking_metrics
from training.pipeline import load_inputs, train
from training.progress import Progress
from training.signals import build_training_data
from training.tune import validation_split


def test_tuning_beats_popularity_within_budget(tmp_path: Path) -> None:
    paths = generate_store(StoreSpec(users=1500, items=300, events=60_000, seed=5),
                           tmp_path / "s", Progress(quiet=True))
    config = quick_config(tmp_path / "m", **paths)
    config.tuning.enabled = True
    config.tuning.time_budget_s = 20
    config.tuning.max_validation_users = 400
    t0 = time.perf_counter()
    result = train(config, Progress(quiet=True))
    tuning = result.manifest["tuning"]
    assert tuning["skipped"] is None
    assert len(tuning["trials"]) >= 2
    # The budget bounds the search (one trial and the final blend search may overrun it a
    # little); the whole run stays near it.
    assert tuning["seconds"] <= 20 * 1.5
    assert time.perf_counter() - t0 < 20 * 1.5 + 20
    metrics = result.manifest["metrics"]["validation"]
    assert set(metrics) >= {"precision@10", "recall@10", "ndcg@10", "map@10"}
    # The generated store records purchase quantities: both weightings were tried, and
    # EASE's regularization was searched (it differs from nothing else but the default).
    assert {t["quantity_scaling"] for t in tuning["trials"]} == {"log", "none"}
    assert tuning["best"]["quantity_scaling"] == result.manifest["training"]["quantity_scaling"]
    assert tuning["best"]["ease_regularization"] > 0
    assert result.model.components["ease"].regularization == tuning["best"][
        "ease_regularization"]

    # The tuned blend beats popularity alone on the same split, ranked the same way.
    model = load_model(tmp_path / "m")
    assert model.weights == {k: v for k, v in tuning["best"]["weights"].items()
                             if k in model.components}
    data, _ = load_inputs(config, Progress(quiet=True))
    users, items = id_universe(data)
    split = validation_split(data.events, users, items, config)
    train_data = build_training_data(split.train_events, users, items, 90.0,
                                     reference_time=split.cutoff)
    popularity = Popularity().fit(train_data)
    batch = UserBatch(users=split.users, history=train_data.user_items[split.users])
    ranking = rank(popularity.score(batch), 10, allowed=model.item_in_stock)
    baseline = ranking_metrics(ranking.items, split.relevant, 10)
    assert metrics["ndcg@10"] > 1.05 * baseline["ndcg@10"]


def test_too_little_data_falls_back_to_defaults(tmp_path: Path, planted) -> None:
    config = quick_config(tmp_path / "m", **planted)
    config.tuning.enabled = True
    result = train(config, Progress(quiet=True))
    tuning = result.manifest["tuning"]
    assert "users return after the cut-off" in tuning["skipped"]
    assert result.manifest["metrics"]["validation"] == {}
    assert load_model(tmp_path / "m").weights["cf"] == 1.0
