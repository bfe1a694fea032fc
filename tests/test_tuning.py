"""Tuning: it learns from a time split within its budget, and knows when not to try."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.core.algorithms import Popularity, UserBatch
from recsvc.core.model import load_model
from tests.conftest import quick_config
from tests.oracle import rank
from training.catalog import id_universe
from training.choice import shrink
from training.config import TrainConfig
from training.folds import validation_folds
from training.generate import StoreSpec, generate_store
from training.metrics import ranking_metrics
from training.pipeline import load_inputs, train
from training.progress import Progress
from training.signals import build_training_data
from training.tune import HALF_LIVES


def test_tuning_runs_its_stages_in_order_and_beats_popularity(tmp_path: Path) -> None:
    """Stages as counted trials (not seconds: this machine's speed must not decide what
    is checked): the starting settings, the other quantity weighting, each other decay
    half-life, then CF draws."""
    paths = generate_store(StoreSpec(users=1500, items=300, events=60_000, seed=5),
                           tmp_path / "s", Progress(quiet=True))
    config = quick_config(tmp_path / "m", **paths)
    config.tuning.enabled = True
    config.tuning.time_budget_s = 10_000  # never the limit here: max_trials is
    config.tuning.max_trials = 2 + len(HALF_LIVES) - 1 + 2
    config.tuning.max_validation_users = 400
    result = train(config, Progress(quiet=True))
    tuning = result.manifest.tuning
    assert tuning.skipped is None
    metrics = result.manifest.metrics.validation
    assert set(metrics) >= {"precision@10", "recall@10", "ndcg@10", "map@10"}
    # The generated store records purchase quantities: both weightings were tried, and
    # EASE's regularization was walked (from its configured 16).
    trials = tuning.trials
    assert len(trials) == config.tuning.max_trials
    assert {t["quantity_scaling"] for t in trials} == {"log", "none"}
    assert tuning.best["quantity_scaling"] == result.manifest.events.quantity_scaling
    assert tuning.best["half_life_days"] == result.manifest.training.half_life_days
    walked = tuning.best["params"]["ease"]["regularization"]
    assert result.model.components["ease"].params.regularization == walked
    assert result.manifest.training.config["model"]["ease"]["regularization"] == walked
    decay_stage = trials[2:2 + len(HALF_LIVES) - 1]
    assert {t["half_life_days"] for t in trials[:2 + len(HALF_LIVES) - 1]} == set(HALF_LIVES)
    assert all(t["params"]["cf"] == trials[0]["params"]["cf"] for t in decay_stage)
    draws = trials[2 + len(decay_stage):]
    assert len(draws) == 2 and all(t["params"]["cf"] != trials[0]["params"]["cf"]
                                   for t in draws)
    # The chosen CF settings are the model's.
    cf = result.model.components["cf"].params
    best_cf = tuning.best["params"].get("cf", {})
    assert all(getattr(cf, k) == v for k, v in best_cf.items())

    # The searched weights were drawn towards the defaults by the validation shoppers.
    users = tuning.choice["users"]
    assert tuning.choice["shrink"]["share"] == round(users / (users + 200), 4)
    if tuning.choice["chosen"] == "tuned":
        assert tuning.best["weights"] == tuning.choice["shrink"]["shrunk"]

    # The tuned blend beats popularity alone on the same folds' users, ranked the same way.
    model = load_model(tmp_path / "m")
    assert model.weights == {k: v for k, v in tuning.best["weights"].items()
                             if k in model.components}
    data, _ = load_inputs(config, Progress(quiet=True))
    users, items = id_universe(data)
    chosen = validation_folds(data.events, users, items, config)
    assert not isinstance(chosen, str) and chosen.protocol == "time"
    folds = chosen.splits
    assert len(folds) == config.tuning.validation_folds
    ranked = []
    for fold in folds:
        train_data = build_training_data(fold.train_events, users, items, 90.0,
                                         reference_time=fold.cutoff)
        popularity = Popularity().fit(train_data)
        batch = UserBatch(users=fold.users, history=train_data.user_items[fold.users])
        ranked += rank(popularity.score(batch), 10, allowed=model.item_in_stock).items
    relevant = sp.vstack([fold.relevant for fold in folds], format="csr")
    baseline = ranking_metrics(ranked, relevant, 10)
    assert metrics["ndcg@10"] > 1.05 * baseline["ndcg@10"]


def test_too_little_data_falls_back_to_defaults(tmp_path: Path, planted) -> None:
    config = quick_config(tmp_path / "m", **planted)
    config.tuning.enabled = True
    result = train(config, Progress(quiet=True))
    tuning = result.manifest.tuning
    assert tuning.skipped is not None and "users return after the cut-off" in tuning.skipped
    assert result.manifest.metrics.validation == {}
    assert load_model(tmp_path / "m").weights["cf"] == 1.0


def test_the_budget_stops_the_search_after_the_first_trial(tmp_path: Path) -> None:
    """A budget smaller than any trial: the starting settings are scored (there is always
    a tuned blend) and nothing more is tried."""
    paths = generate_store(StoreSpec(users=600, items=120, events=20_000, seed=6),
                           tmp_path / "s", Progress(quiet=True))
    config = quick_config(tmp_path / "m", **paths)
    config.tuning.enabled = True
    config.tuning.time_budget_s = 1e-6
    tuning = train(config, Progress(quiet=True)).manifest.tuning
    assert tuning.skipped is None and len(tuning.trials) == 1


def _events(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    return frame.assign(weight=1.0)


def test_validation_folds_are_consecutive_windows_back_from_the_end() -> None:
    """Time span 0..1000 s, a tenth per fold: fold 0 holds out [900, 1000], fold 1
    [800, 900), fold 2 [700, 800). Each fold trains on what came before its window and
    is judged on the returning users' purchases inside it, nothing later."""
    rows = [(f"u{u}", "a", "view", 0) for u in range(6)]  # everyone has a past
    rows += [("u0", "b", "purchase", 950), ("u1", "c", "purchase", 1000),  # fold 0
             ("u2", "b", "purchase", 850), ("u3", "d", "purchase", 800),   # fold 1
             ("u4", "c", "purchase", 750), ("u5", "d", "view", 760),       # fold 2
             ("u9", "a", "purchase", 720)]  # no past before 700: not a validation user
    events = _events(rows)
    users = np.array(sorted({r[0] for r in rows}))
    items = np.array(["a", "b", "c", "d"])
    config = TrainConfig()
    config.tuning.validation_fraction = 0.1
    config.tuning.validation_folds = 3
    config.tuning.min_validation_users = 1
    chosen = validation_folds(events, users, items, config)
    assert not isinstance(chosen, str)
    folds = chosen.splits
    assert [f.cutoff for f in folds] == [900, 800, 700]
    expected = [{"u0": ["b"], "u1": ["c"]},  # the log's last second included
                {"u2": ["b"], "u3": ["d"]},  # not u0's purchase at 950: a later window
                {"u4": ["c"]}]  # u5 only viewed
    for fold, want in zip(folds, expected, strict=True):
        assert int(fold.train_events["timestamp"].max()) < fold.cutoff
        got = {users[u]: sorted(items[fold.relevant[row].indices])
               for row, u in enumerate(fold.users)}
        assert got == want

    # A fold with too few returning users ends the list; without the last window there
    # is nothing to tune on.
    config.tuning.min_validation_users = 2
    chosen = validation_folds(events, users, items, config)
    assert not isinstance(chosen, str) and len(chosen.splits) == 2
    config.tuning.min_validation_users = 3
    assert "users return after the cut-off" in validation_folds(events, users, items, config)
    # `auto` falls back on each shopper's last events rather than not tuning at all.
    config.tuning.split = "auto"
    chosen = validation_folds(events, users, items, config)
    assert not isinstance(chosen, str) and chosen.protocol == "leave-last"
    assert "users return after the cut-off" in chosen.why


def test_a_challenger_replaces_the_defaults_only_beyond_chance() -> None:
    """The tuner's last word (`choose`): the defaults stay unless a challenger's gain on
    the validation shoppers holds under a paired bootstrap; popularity is a challenger
    too; with few shoppers a small gain is not enough."""
    from training.choice import choose
    from training.tune import TuningResult

    def result(name: str) -> TuningResult:
        return TuningResult({}, 90.0, {name: 1.0}, True)

    rng = np.random.default_rng(0)
    defaults = rng.random(400)
    clear = defaults + 0.05 + rng.normal(0, 0.05, 400)  # better for nearly everyone
    noise = defaults + rng.normal(0.002, 0.2, 400)  # better on average, by chance
    chosen, why = choose({"defaults": (defaults, result("d")), "tuned": (clear, result("t")),
                          "popularity": (noise, result("p"))}, seed=1)
    assert chosen.weights == {"t": 1.0} and why["chosen"] == "tuned"
    assert why["candidates"]["tuned"]["gain_low"] > 0 >= why["candidates"]["popularity"][
        "gain_low"]
    chosen, why = choose({"defaults": (defaults, result("d")), "tuned": (noise, result("t"))},
                         seed=1)
    assert chosen.weights == {"d": 1.0} and why["chosen"] == "defaults"
    few = defaults[:8]  # the same real gain, on eight shoppers: not shown beyond chance
    wobbly = few + np.array([0.3, -0.2, 0.25, -0.15, 0.2, -0.1, 0.1, -0.05])
    chosen, why = choose({"defaults": (few, result("d")), "tuned": (wobbly, result("t"))},
                         seed=1)
    assert why["chosen"] == "defaults"
    better = defaults + 0.2  # popularity far better than the defaults: chosen
    chosen, _ = choose({"defaults": (defaults, result("d")), "popularity": (better,
                                                                          result("p"))}, 1)
    assert chosen.weights == {"p": 1.0}


def test_leave_last_and_random_folds() -> None:
    rows = [(f"u{u}", f"i{j}", "purchase", 100 * j + u) for u in range(4) for j in range(5)]
    events = _events(rows)
    users = np.array(sorted({r[0] for r in rows}))
    items = np.array(sorted({r[1] for r in rows}))
    config = TrainConfig()
    config.tuning.min_validation_users = 1
    config.tuning.validation_folds = 2
    config.tuning.split = "leave-last"
    chosen = validation_folds(events, users, items, config)
    assert not isinstance(chosen, str) and chosen.protocol == "leave-last"
    first, second = chosen.splits
    # Fold 0 holds out each shopper's last purchase (i4), fold 1 the one before (i3),
    # training only on what came before it.
    assert all(items[first.relevant[r].indices].tolist() == ["i4"] for r in range(4))
    assert all(items[second.relevant[r].indices].tolist() == ["i3"] for r in range(4))
    assert set(second.train_events["item_id"]) == {"i0", "i1", "i2"}
    assert second.cutoff == int(second.train_events["timestamp"].max())
    config.tuning.split = "random"
    config.tuning.validation_fraction = 0.4  # two of each shopper's five pairs
    chosen = validation_folds(events, users, items, config)
    assert not isinstance(chosen, str) and chosen.protocol == "random"
    a, b = chosen.splits
    assert all(a.relevant[r].nnz == 2 for r in range(4))
    assert (a.relevant != b.relevant).nnz > 0  # another seed, another share
    held = set(zip(a.relevant.nonzero()[0], a.relevant.nonzero()[1], strict=True))
    train = {(int(np.searchsorted(users, u)), int(np.searchsorted(items, i)))
             for u, i in zip(a.train_events["user_id"], a.train_events["item_id"],
                             strict=True)}
    assert not held & train  # a held-out pair leaves train entirely


def test_tuned_weights_are_drawn_towards_the_defaults_by_the_validation_shoppers() -> None:
    """The defaults weigh as much as `shrink_users` validation shoppers: with as many
    shoppers as that, the weights end half-way; with none of that weight, as searched."""
    start = {"cf": 1.0, "popularity": 0.25}
    searched = {"cf": 3.0, "popularity": 0.25, "history": 2.0}
    half, share = shrink(start, searched, users=200, prior_users=200)
    assert share == 0.5 and half == {"cf": 2.0, "popularity": 0.25, "history": 1.0}
    assert shrink(start, searched, users=200, prior_users=0) == (
        {"cf": 3.0, "popularity": 0.25, "history": 2.0}, 1.0)
    assert shrink(start, searched, users=1800, prior_users=200)[0]["cf"] == 2.8
