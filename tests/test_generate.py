"""The synthetic store: deterministic, well-formed, and with the structure it promises."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.generate import StoreSpec, generate_store
from training.progress import Progress
from training.readers import read_interactions, read_items, read_users


def make(tmp_path: Path, name: str, **spec) -> dict[str, Path]:
    return generate_store(StoreSpec(**spec), tmp_path / name, Progress(quiet=True))


def test_same_seed_same_store_other_seed_other_store(tmp_path: Path) -> None:
    a = make(tmp_path, "a", users=500, items=200, events=20_000, seed=3)
    b = make(tmp_path, "b", users=500, items=200, events=20_000, seed=3)
    c = make(tmp_path, "c", users=500, items=200, events=20_000, seed=4)
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
    assert a["interactions"].read_bytes() != c["interactions"].read_bytes()


def test_store_has_the_promised_shape(tmp_path: Path) -> None:
    paths = make(tmp_path, "s", users=2000, items=400, events=80_000, seed=0)
    events = read_interactions(paths["interactions"])
    items = read_items(paths["items"])
    users = read_users(paths["users"])
    assert len(items) == 400 and len(users) == 2000
    assert 0.85 * 80_000 <= len(events) <= 1.15 * 80_000
    counts = events["event_type"].value_counts()
    # The funnel narrows: views > carts > purchases > refunds.
    assert counts["view"] > counts["add_to_cart"] > counts["purchase"] > counts["refund"] > 0
    assert {"click", "rating", "review"} <= set(counts.index)
    ratings = events.loc[events.event_type == "rating", "value"]
    assert ratings.between(1, 5).all()
    # Repeat purchases happen.
    purchases = events[events.event_type == "purchase"]
    assert purchases.duplicated(["user_id", "item_id"]).mean() > 0.05
    # New items arrive during the period, and nobody sees an item before it exists.
    times = pd.to_datetime(events["timestamp"], utc=True)
    created = pd.to_datetime(items.set_index("item_id")["created_at"], utc=True)
    assert (created > times.min()).mean() > 0.1
    assert (times.to_numpy() >= created.loc[events["item_id"]].to_numpy()).all()
    assert set(users.columns) >= {"segment", "region", "tier", "consent"}
    assert (~users["consent"]).sum() > 0
    assert set(items.columns) >= {"title", "description", "category", "brand", "price", "tags",
                                  "in_stock", "created_at"}


def test_tastes_are_planted(tmp_path: Path) -> None:
    """Shoppers concentrate on a favourite department, as the generator promises."""
    paths = make(tmp_path, "s", users=1000, items=400, events=60_000, seed=2)
    events = read_interactions(paths["interactions"])
    items = read_items(paths["items"]).set_index("item_id")
    dept = items.loc[events["item_id"], "category"].str.split(" > ").str[0].to_numpy()
    frame = pd.DataFrame({"user": events["user_id"].to_numpy(), "dept": dept})
    top_share = frame.groupby("user")["dept"].agg(lambda d: d.value_counts(normalize=True)
                                                  .iloc[0])
    assert top_share.median() > 0.45  # 8 departments: uniform taste would give ~0.2
