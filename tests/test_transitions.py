"""The "what comes next" algorithm: directional transitions from ordered histories, a
known answer on a planted chain, scored from a shopper's (or a session's) last items,
and explained by the item the pick came next after."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsvc.core.algorithms import Transitions, UserBatch
from recsvc.core.engine import load_engine
from recsvc.core.lists import RecommendQuery, shopper_list
from recsvc.core.policy.filters import filter_stage
from recsvc.core.policy.rules import DEFAULT_VARIANT, RulesFile
from recsvc.core.ranking.packed import unpack
from tests.conftest import T0, quick_config, write_csv
from training.pipeline import train
from training.progress import Progress
from training.signals import build_training_data, last_items

CHAIN = ["c0", "c1", "c2", "c3", "c4", "c5"]


def chain_events() -> pd.DataFrame:
    """40 shoppers walk the chain c0 -> c1 -> ... in order, each from some start (so
    every step is seen many times); noise items n* are touched out of order."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        begin = u % 4
        t = T0 + u * 86_400
        for step, item in enumerate(CHAIN[begin:]):
            rows.append({"user_id": f"u{u}", "item_id": item, "event_type": "view",
                         "timestamp": t + 60 * step})
        for k in range(2):
            rows.append({"user_id": f"u{u}", "item_id": f"n{rng.integers(5)}",
                         "event_type": "view", "timestamp": t - 3600 * (k + 1)})
    return pd.DataFrame(rows)


def fitted(events: pd.DataFrame, **params: object) -> tuple[Transitions, np.ndarray]:
    items = np.array(sorted(events["item_id"].unique()))
    users = np.array(sorted(events["user_id"].unique()))
    data = build_training_data(events.assign(weight=1.0), users, items, 90.0)
    return Transitions(**params).fit(data), items


def test_successors_follow_the_chain_one_step_ahead() -> None:
    model, items = fitted(chain_events())
    at = {item: i for i, item in enumerate(items)}
    for a, b in zip(CHAIN, CHAIN[1:], strict=False):
        row = model.successors[at[a]].toarray()[0]
        assert items[int(np.argmax(row))] == b  # the next step, not two ahead
        assert row.sum() == pytest.approx(1.0, abs=1e-6)  # a distribution over what next
    assert model.successors[at["c5"]].nnz == 0  # nothing ever followed the chain's end
    # Two steps ahead weighs distance_decay times one step (the same shoppers, the same
    # age): c0 -> c1 against c0 -> c2, counted by the ten shoppers who start at c0.
    raw, _ = fitted(chain_events()[lambda f: f.user_id.isin([f"u{u}" for u in range(0, 40, 4)])],
                    window=2, half_life_days=1e9)
    row = raw.successors[at["c0"]].toarray()[0]
    assert row[at["c2"]] == pytest.approx(0.5 * row[at["c1"]], rel=1e-4)


def test_a_shoppers_last_items_score_what_comes_next() -> None:
    model, items = fitted(chain_events())
    at = {item: i for i, item in enumerate(items)}
    recent = np.array([[at["c2"], at["c1"], -1, -1, -1],  # newest first: at c2 now
                       [-1, -1, -1, -1, -1]])  # nothing recent: no opinion
    import scipy.sparse as sp

    batch = UserBatch(users=np.array([-1, -1]), history=sp.csr_matrix((2, len(items))),
                      recent=recent)
    scores = model.score(batch)
    assert items[int(np.argmax(scores[0]))] == "c3"
    assert not scores[1].any()
    np.testing.assert_allclose(model.score_compact(batch).dense(), scores)
    # The users' own last items, as the trainer keeps them: newest first, distinct.
    users = np.array([0, 0, 0, 1])
    last = last_items(users, np.array([3, 4, 3, 7]), np.array([1, 2, 3, 1]), 3, count=3)
    assert last.tolist() == [[3, 4, -1], [7, -1, -1], [-1, -1, -1]]


def test_a_session_gets_what_comes_next_and_is_told_after_what(tmp_path: Path) -> None:
    events = chain_events()
    path = write_csv(tmp_path / "events.csv", events)
    catalog = write_csv(tmp_path / "items.csv", [
        {"item_id": i, "title": f"thing {i}", "category": "Things"}
        for i in sorted(events["item_id"].unique())])
    config = quick_config(tmp_path / "m", interactions=path, items=catalog)
    config.blend.weights = {"next": 4.0}
    train(config, Progress(quiet=True))
    engine = load_engine(tmp_path / "m", None, RulesFile())
    model = engine.model
    live = model.item_in_stock.astype(bool)
    allowed = filter_stage(model, engine.rules, live, model.item_price).allowed
    query = RecommendQuery(user_id="", n=3, recent_items=("c0", "c3"))  # now at c3
    value, _ = shopper_list(engine, query, DEFAULT_VARIANT, [], live, allowed, 3, T0, 30)
    packed = unpack(value)
    assert packed is not None
    first = engine.renderer.items(packed)[0]
    assert first["item_id"] == "c4"
    assert {"code": "next_after", "item_id": "c3"} in first["reasons"]
