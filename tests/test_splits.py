"""Splits: each holds out what it says, leaks nothing, and is reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsvc.core.errors import InputError
from training.splits import leave_last_split, random_split, time_split


def log(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["weight"] = frame["event_type"].map({"view": 1.0, "purchase": 10.0})
    return frame


def test_time_split_at_a_date_and_at_a_share_of_events() -> None:
    events = log([("u", f"i{t}", "purchase", t) for t in range(10)])
    split = time_split(events, cutoff=7)
    assert list(split.train["timestamp"]) == list(range(7))
    assert list(split.test["timestamp"]) == [7, 8, 9]
    split = time_split(events, test_fraction=0.2)
    assert list(split.test["timestamp"]) == [8, 9]
    with pytest.raises(InputError, match="no events on one side"):
        time_split(events, cutoff=100)


def test_leave_last_holds_out_each_users_last_purchases_and_what_came_after() -> None:
    events = log([
        ("a", "i1", "purchase", 1), ("a", "i2", "purchase", 2), ("a", "i3", "view", 3),
        ("a", "i3", "purchase", 4), ("a", "i4", "view", 5),
        ("b", "i1", "purchase", 1),  # one purchase only: held out, b becomes a new user
        ("c", "i9", "view", 1),  # nothing to hold out: stays in train
    ])
    split = leave_last_split(events, 1, ["purchase"])
    assert sorted(zip(split.test["user_id"], split.test["timestamp"], strict=True)) == [
        ("a", 4), ("a", 5), ("b", 1)]
    assert set(split.train["user_id"]) == {"a", "c"}
    split = leave_last_split(events, 2, ["purchase"])
    assert sorted(split.test.loc[split.test["user_id"] == "a", "timestamp"]) == [2, 3, 4, 5]


def test_random_split_per_user_keeps_one_pair_in_train_and_removes_leaks() -> None:
    rows = []
    for u in range(50):
        for i in range(5):
            rows.append((f"u{u}", f"i{i}", "view", i))
            rows.append((f"u{u}", f"i{i}", "purchase", 10 + i))
    rows.append(("solo", "i1", "purchase", 3))  # one pair: never held out
    events = log(rows)
    split = random_split(events, 0.4, seed=3, by="user", target_events=["purchase"])
    held = split.test.groupby("user_id")["item_id"].nunique()
    assert (held == 2).all() and len(held) == 50  # round(0.4 x 5) = 2 per user
    assert "solo" not in set(split.test["user_id"])
    # No event of a held-out pair remains in train: the view cannot leak the purchase.
    test_pairs = set(zip(split.test["user_id"], split.test["item_id"], strict=True))
    train_pairs = set(zip(split.train["user_id"], split.train["item_id"], strict=True))
    assert not test_pairs & train_pairs
    again = random_split(events, 0.4, seed=3, by="user", target_events=["purchase"])
    assert again.test.equals(split.test)
    other = random_split(events, 0.4, seed=4, by="user", target_events=["purchase"])
    assert not other.test.equals(split.test)


def test_random_split_per_item_is_stratified_by_item() -> None:
    rows = [(f"u{u}", f"i{i}", "purchase", u) for i in range(4) for u in range(10 * (i + 1))]
    split = random_split(log(rows), 0.2, seed=0, by="item", target_events=["purchase"])
    per_item = split.test.groupby("item_id")["user_id"].nunique().to_dict()
    assert per_item == {"i0": 2, "i1": 4, "i2": 6, "i3": 8}
    assert np.isclose(len(split.test) / len(rows), 0.2)
