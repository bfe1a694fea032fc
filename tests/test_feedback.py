"""Negative feedback: "not interested" and "dislike" hide the item from that shopper at
once and after training, and lower its neighbours and (mildly) its category."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from recsvc.core.model import load_model
from recsvc.core.policy.feedback import (
    CATEGORY_PENALTY,
    NEIGHBOUR_PENALTY,
    NEIGHBOURS,
    feedback_bias,
    negatives_of,
)
from tests.conftest import T0, planted_seen, planted_store, quick_config
from tests.test_service import QUIET, start_service
from training.pipeline import train


def answer(user: str) -> list[str]:
    """The planted answer: the 4 items of the user's group they did not touch."""
    return sorted(set(f"{user[0]}{j}" for j in range(10)) - set(planted_seen(user)))


def train_with_feedback(tmp_path: Path) -> dict[str, Path]:
    """The planted store, where au0 said no to one of its answer's items; au5 disliked an
    item and bought it later (the no is withdrawn); au6 said no to something it had
    bought before (the no stands)."""
    store = planted_store(tmp_path)
    late = T0 + 400 * 86_400 // 100
    extra = [("au0", answer("au0")[0], "not_interested", late),
             ("au5", answer("au5")[0], "dislike", late),
             ("au5", answer("au5")[0], "purchase", late + 60),
             ("au6", planted_seen("au6")[0], "dislike", late)]
    with open(store["interactions"], "a", newline="") as f:
        writer = csv.writer(f)
        for user, item, kind, ts in extra:
            writer.writerow([user, item, kind, ts, ""])
    train(quick_config(tmp_path / "m", **store), QUIET)
    return store


def test_training_keeps_the_standing_nos(tmp_path: Path) -> None:
    train_with_feedback(tmp_path)
    model = load_model(tmp_path / "m")
    negatives = model.user_negatives
    assert negatives is not None and negatives.nnz == 2
    au0, au6 = model.user_index(["au0", "au6"])
    assert negatives_of(model, int(au0), []) == {
        int(model.item_index([answer("au0")[0]])[0]): 1.0}
    assert negatives_of(model, int(au6), []) == {
        int(model.item_index([planted_seen("au6")[0]])[0]): 1.5}
    # Fresh events in order: a no, then engaging with the item again, withdraws it.
    item = int(model.item_index(["a9"])[0])
    assert negatives_of(model, -1, [(item, -2.0, "not_interested")]) == {item: 1.0}
    assert negatives_of(model, -1, [(item, -2.0, "not_interested"), (item, 2.0, "click")]
                        ) == {}


def test_the_penalty_follows_neighbours_then_category(tmp_path: Path) -> None:
    train_with_feedback(tmp_path)
    model = load_model(tmp_path / "m")
    b3 = int(model.item_index(["b3"])[0])
    bias, hidden = feedback_bias(model, {b3: 1.0})
    assert hidden.tolist() == [b3]
    ids = model.item_ids.tolist()
    garden = np.array([bias[j] for j, i in enumerate(ids) if i.startswith("b") and j != b3])
    kitchen = np.array([bias[j] for j, i in enumerate(ids) if i.startswith("a")])
    # The 9 other garden items are b3's nearest neighbours (1 - rank/20 of the full
    # penalty) and share its category (0.3 more); kitchen items are its far neighbours.
    assert garden.max() <= -(NEIGHBOUR_PENALTY * (1 - 8 / NEIGHBOURS) + CATEGORY_PENALTY) + 1e-6
    assert kitchen.min() >= -NEIGHBOUR_PENALTY * (1 - 9 / NEIGHBOURS) - 1e-6
    assert kitchen.max() <= 0


def test_a_no_hides_the_item_and_lowers_its_neighbours_at_once(tmp_path: Path) -> None:
    store = train_with_feedback(tmp_path)
    svc = start_service(tmp_path, store)
    try:
        # From the model: au0 never gets the item it said no to, though it is planted.
        listed = svc.items("/recommend", user_id="au0", n=10)
        assert answer("au0")[0] not in listed and set(answer("au0")[1:]) <= set(listed)
        # Fresh: bu0 says no to the top item of its list.
        before = {i["item_id"]: i["score"]
                  for i in svc.get("/recommend", user_id="bu0", n=20).json()["items"]}
        top = next(iter(before))
        assert top in answer("bu0")
        posted = svc.http.post("/events", json=[{"user_id": "bu0", "item_id": top,
                                                 "event_type": "not_interested"}])
        assert posted.status_code == 200, posted.text
        after = {i["item_id"]: i["score"]
                 for i in svc.get("/recommend", user_id="bu0", n=20).json()["items"]}
        assert top not in after
        drop = {item: before[item] - after[item] for item in after if item in before}
        garden = [d for item, d in drop.items() if item.startswith("b")]
        kitchen = [d for item, d in drop.items() if item.startswith("a")]
        # Its neighbours (the same garden group, the same category) lose the most.
        assert np.mean(garden) > np.mean(kitchen) + 0.3
        # An unknown negative type is refused; a dislike works the same way.
        bad = svc.http.post("/events", json=[{"user_id": "bu0", "item_id": "b1",
                                              "event_type": "meh"}])
        assert bad.status_code == 422 and "not_interested" in bad.text
    finally:
        svc.http.close()
        svc.server.stop()
