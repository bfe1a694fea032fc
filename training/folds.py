"""The tuner's validation folds: consecutive time windows back from the end of the log,
each with the shoppers who return in it and what they then bought."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.core.errors import InputError
from recsvc.core.model import lookup
from training.config import TrainConfig
from training.splits import is_target, time_split

# Bound the dense score matrices the tuner holds: validation users x catalog size.
MAX_SCORE_CELLS = 40_000_000


@dataclass
class Split:
    train_events: pd.DataFrame
    users: np.ndarray  # validation users (numbers in the id universe)
    relevant: sp.csr_matrix  # len(users) x items: bought after the cut-off
    cutoff: int



def validation_split(
    events: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    config: TrainConfig,
    fold: int,
    max_users: int,
) -> Split | str:
    """One of the tuner's folds — cut at a share of the time span (`splits.time_split`),
    then the returning shoppers' target events in the next `validation_fraction` of the
    span as what to predict — or the reason there is none worth tuning on. Fold 0 holds
    out the end of the log; fold j ends where fold j - 1 begins."""
    tuning = config.tuning
    times = events["timestamp"].to_numpy(dtype=np.int64)
    if times.size == 0 or times.min() == times.max():
        return "all events share one timestamp"
    span = times.max() - times.min()
    cutoff = int(times.min() + (1 - (fold + 1) * tuning.validation_fraction) * span)
    end = int(times.min() + (1 - fold * tuning.validation_fraction) * span)
    try:
        cut = time_split(events, cutoff=cutoff)
    except InputError as exc:
        return str(exc)
    train, after = cut.train, cut.test
    if fold:  # the last window holds the log's final second too
        after = after.loc[after["timestamp"].to_numpy(dtype=np.int64) < end]
    targets = after.loc[is_target(after, tuning.target_events)]
    targets = targets.loc[targets["user_id"].isin(train["user_id"].unique())]
    users = lookup(user_ids, targets["user_id"].to_numpy(dtype=str))
    items = lookup(item_ids, targets["item_id"].to_numpy(dtype=str))
    unique_users = np.unique(users)
    if unique_users.size < tuning.min_validation_users:
        return (f"only {unique_users.size} users return after the cut-off "
                f"(need {tuning.min_validation_users})")
    cap = max(tuning.min_validation_users, max_users)  # `validation_folds` shares it out
    if unique_users.size > cap:
        rng = np.random.default_rng(tuning.seed + fold)
        unique_users = np.sort(rng.choice(unique_users, size=cap, replace=False))
    row = np.searchsorted(unique_users, users)
    keep = (row < unique_users.size) & (unique_users[np.minimum(row, unique_users.size - 1)]
                                        == users)
    relevant = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (row[keep], items[keep])),
        shape=(unique_users.size, len(item_ids)),
    )
    relevant.data[:] = 1.0
    return Split(train_events=train, users=unique_users, relevant=relevant, cutoff=cutoff)


def validation_folds(
    events: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    config: TrainConfig,
) -> list[Split] | str:
    """Up to `validation_folds` consecutive windows back from the end of the log. Each
    fold is a model trained on its own past and the shoppers who return in its window:
    a hundred returning shoppers judge a blend of seven weights noisily, and more of them,
    from more than one month, make the choices steadier. The folds stop at the first
    window with too few returning shoppers; without the last window there is no tuning."""
    tuning = config.tuning
    cells_cap = MAX_SCORE_CELLS // max(1, len(item_ids))
    per_fold = max(1, min(tuning.max_validation_users, cells_cap) // tuning.validation_folds)
    folds: list[Split] = []
    for fold in range(tuning.validation_folds):
        split = validation_split(events, user_ids, item_ids, config, fold, per_fold)
        if isinstance(split, str):
            if fold == 0:
                return split
            break
        folds.append(split)
    return folds
