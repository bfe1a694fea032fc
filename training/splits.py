"""Held-out splits of a clean event log, for evaluation.

- `time`: one global cut-off; train on the past, test on the future (how a shop lives).
- `leave_last`: per user, the last k target events (and anything at or after them) are
  held out; everything before stays in train.
- `random`: per user (or per item, stratified), a seeded share of the (user, item) pairs
  with a target event is held out; all events of a held-out pair leave train, so a view
  cannot leak the purchase it preceded.

Test users who end up with nothing in train are not dropped: the evaluator reports them
as the cold-start group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from recsvc.core.errors import InputError

SplitMethod = Literal["time", "leave-last", "random"]


@dataclass
class EventSplit:
    train: pd.DataFrame
    test: pd.DataFrame
    description: dict[str, Any] = field(default_factory=dict)


def is_target(events: pd.DataFrame, target_events: list[str]) -> np.ndarray:
    """Events that count as relevant: the target types, or any positive event in a log
    that has none of them (a shop without purchases in its log)."""
    target = events["event_type"].isin(target_events).to_numpy()
    if not target.any():
        target = events["weight"].to_numpy() > 0
    return target


def time_split(
    events: pd.DataFrame, test_fraction: float = 0.2, cutoff: int | None = None
) -> EventSplit:
    """Cut at `cutoff` (epoch seconds), or where the last `test_fraction` of events begins."""
    times = events["timestamp"].to_numpy(dtype=np.int64)
    if cutoff is None:
        if not 0 < test_fraction < 1:
            raise InputError(f"--test-fraction must be between 0 and 1, not {test_fraction}")
        cutoff = int(np.quantile(times, 1 - test_fraction, method="higher"))
    before = times < cutoff
    if before.all() or not before.any():
        raise InputError("the time split leaves no events on one side of the cut-off "
                         f"({pd.Timestamp(cutoff, unit='s', tz='UTC').isoformat()})")
    return EventSplit(events.loc[before], events.loc[~before],
                      {"method": "time", "cutoff": int(cutoff),
                       "cutoff_iso": pd.Timestamp(cutoff, unit="s", tz="UTC").isoformat()})


def leave_last_split(events: pd.DataFrame, k: int, target_events: list[str]) -> EventSplit:
    if k < 1:
        raise InputError(f"--leave-last must be at least 1, not {k}")
    target = is_target(events, target_events)
    targets = events.loc[target, ["user_id", "timestamp"]].astype({"user_id": str})
    targets = targets.sort_values(["user_id", "timestamp"], kind="stable")
    # The k-th last target time of each user (their first, with fewer): their cut-off.
    by_user = targets.groupby("user_id", sort=False)
    from_end = by_user.cumcount(ascending=False).to_numpy()
    size = by_user["timestamp"].transform("size").to_numpy()
    picked = targets.loc[from_end == np.minimum(k, size) - 1]
    kth_last = pd.Series(picked["timestamp"].to_numpy(), index=picked["user_id"].to_numpy())
    user_cut = events["user_id"].astype(str).map(kth_last)
    held = user_cut.notna().to_numpy() & (
        events["timestamp"].to_numpy() >= user_cut.fillna(np.inf).to_numpy())
    if not held.any():
        raise InputError("leave-last split: no user has a target event to hold out")
    return EventSplit(events.loc[~held], events.loc[held],
                      {"method": "leave-last", "k": int(k)})


def random_split(
    events: pd.DataFrame,
    test_fraction: float,
    seed: int,
    by: Literal["user", "item"],
    target_events: list[str],
) -> EventSplit:
    if not 0 < test_fraction < 1:
        raise InputError(f"--test-fraction must be between 0 and 1, not {test_fraction}")
    target = is_target(events, target_events)
    pairs = events.loc[target, ["user_id", "item_id"]].astype(str).drop_duplicates()
    group = pairs["user_id" if by == "user" else "item_id"].to_numpy()
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(pairs)), group))
    grouped = pd.Series(group[order])
    position = grouped.groupby(grouped, sort=False).cumcount().to_numpy()
    size = grouped.map(grouped.value_counts()).to_numpy()
    # Round half up, and keep at least one pair of each group in train.
    n_test = np.minimum(np.floor(test_fraction * size + 0.5), size - 1)
    held_pairs = pairs.iloc[order[position < n_test]]
    if held_pairs.empty:
        raise InputError("random split: too few events per "
                         f"{by} to hold out {test_fraction:.0%}")
    key = events["user_id"].astype(str) + "\x1f" + events["item_id"].astype(str)
    held_key = set(held_pairs["user_id"] + "\x1f" + held_pairs["item_id"])
    in_held_pair = key.isin(held_key).to_numpy()
    return EventSplit(events.loc[~in_held_pair], events.loc[in_held_pair & target],
                      {"method": "random", "by": by, "test_fraction": test_fraction,
                       "seed": seed})


def split_events(
    events: pd.DataFrame,
    method: SplitMethod,
    target_events: list[str],
    test_fraction: float = 0.2,
    cutoff: int | None = None,
    leave_last: int = 1,
    seed: int = 0,
    by: Literal["user", "item"] = "user",
) -> EventSplit:
    if method == "time":
        return time_split(events, test_fraction, cutoff)
    if method == "leave-last":
        return leave_last_split(events, leave_last, target_events)
    if method == "random":
        return random_split(events, test_fraction, seed, by, target_events)
    raise InputError(f"unknown split {method!r} (time, leave-last or random)")
