"""The tuner's validation folds, by the protocol the shop cares about
(`tuning.split`, `--tune-split`), cut by the evaluator's own splitters
(`training.splits`):

- `time` (the default): consecutive windows back from the end of the log; a fold trains
  on the events before its window and predicts what the shoppers who come back buy in it.
- `leave-last`: each shopper's last target event (and what came after it) is held out;
  fold j holds out the j-th last, training on what came before.
- `random`: a seeded share of each shopper's (user, item) target pairs is held out, a
  different seed per fold (a ratings set's protocol).
- `auto`: time windows when enough shoppers return after the cut-offs, otherwise
  leave-last (a log of short histories, or of one burst), rather than no tuning.

Which protocol was used, and why, is reported with the tuning."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.core.errors import InputError
from recsvc.core.model import lookup
from training.config import TrainConfig
from training.splits import is_target, leave_last_split, random_split, time_split

# Bound the dense score matrices the tuner holds: validation users x catalog size.
MAX_SCORE_CELLS = 40_000_000


@dataclass
class Split:
    train_events: pd.DataFrame
    users: np.ndarray  # validation users (numbers in the id universe)
    relevant: sp.csr_matrix  # len(users) x items: their held-out target items
    cutoff: int  # the end of the fold's training data (its reference time)


@dataclass
class Folds:
    splits: list[Split]
    protocol: str  # time, leave-last or random
    why: str  # how the protocol was chosen


def _fold(train: pd.DataFrame, held: pd.DataFrame, user_ids: np.ndarray,
          item_ids: np.ndarray, config: TrainConfig, fold: int, max_users: int,
          cutoff: int | None = None) -> Split | str:
    """A fold from a train part and a held-out part: the held-out target events of the
    shoppers the train part knows, at most `max_users` of them (seeded sample)."""
    tuning = config.tuning
    targets = held.loc[is_target(held, tuning.target_events)]
    targets = targets.loc[targets["user_id"].isin(train["user_id"].unique())]
    users = lookup(user_ids, targets["user_id"].to_numpy(dtype=str))
    items = lookup(item_ids, targets["item_id"].to_numpy(dtype=str))
    known = (users >= 0) & (items >= 0)
    users, items = users[known], items[known]
    unique_users = np.unique(users)
    if unique_users.size < tuning.min_validation_users:
        return (f"only {unique_users.size} users with held-out target events "
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
    if cutoff is None:
        cutoff = int(train["timestamp"].to_numpy(dtype=np.int64).max())
    return Split(train_events=train, users=unique_users, relevant=relevant, cutoff=cutoff)


def time_window(events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray,
                config: TrainConfig, fold: int, max_users: int) -> Split | str:
    """Fold j of the time protocol — cut at a share of the time span
    (`splits.time_split`), the returning shoppers' target events in the next
    `validation_fraction` of the span as what to predict — or why there is none. Fold 0
    holds out the end of the log; fold j ends where fold j - 1 begins."""
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
    after = cut.test
    if fold:  # the last window holds the log's final second too
        after = after.loc[after["timestamp"].to_numpy(dtype=np.int64) < end]
    split = _fold(cut.train, after, user_ids, item_ids, config, fold, max_users, cutoff)
    if isinstance(split, str):
        return split.replace("with held-out target events", "return after the cut-off")
    return split


def _per_fold_users(config: TrainConfig, n_items: int) -> int:
    cells_cap = MAX_SCORE_CELLS // max(1, n_items)
    tuning = config.tuning
    return max(1, min(tuning.max_validation_users, cells_cap) // tuning.validation_folds)


def _time_folds(events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray,
                config: TrainConfig) -> list[Split] | str:
    """Up to `validation_folds` consecutive windows back from the end of the log: a
    hundred returning shoppers judge a blend of seven weights noisily, and more of them,
    from more than one month, make the choices steadier. The folds stop at the first
    window with too few returning shoppers; without the last window, none."""
    per_fold = _per_fold_users(config, len(item_ids))
    folds: list[Split] = []
    for fold in range(config.tuning.validation_folds):
        split = time_window(events, user_ids, item_ids, config, fold, per_fold)
        if isinstance(split, str):
            if fold == 0:
                return split
            break
        folds.append(split)
    return folds


def _leave_last_folds(events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray,
                      config: TrainConfig) -> list[Split] | str:
    per_fold = _per_fold_users(config, len(item_ids))
    folds: list[Split] = []
    rest = events
    for fold in range(config.tuning.validation_folds):
        try:
            cut = leave_last_split(rest, 1, config.tuning.target_events)
        except InputError as exc:
            split: Split | str = str(exc)
        else:
            split = _fold(cut.train, cut.test, user_ids, item_ids, config, fold, per_fold)
        if isinstance(split, str):
            if fold == 0:
                return split
            break
        folds.append(split)
        rest = cut.train  # the next fold holds out the one before
    return folds


def _random_folds(events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray,
                  config: TrainConfig) -> list[Split] | str:
    tuning = config.tuning
    per_fold = _per_fold_users(config, len(item_ids))
    folds: list[Split] = []
    for fold in range(tuning.validation_folds):
        try:
            cut = random_split(events, tuning.validation_fraction, tuning.seed + fold, "user",
                               tuning.target_events)
        except InputError as exc:
            return str(exc)
        split = _fold(cut.train, cut.test, user_ids, item_ids, config, fold, per_fold)
        if isinstance(split, str):
            return split
        folds.append(split)
    return folds


def validation_folds(events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray,
                     config: TrainConfig) -> Folds | str:
    """The folds of `tuning.split`, or why there are none worth tuning on."""
    protocol = config.tuning.split
    if protocol in ("time", "auto"):
        folds = _time_folds(events, user_ids, item_ids, config)
        if not isinstance(folds, str):
            return Folds(folds, "time", f"{len(folds)} time windows with returning shoppers")
        if protocol == "time":
            return folds
        why = f"time windows: {folds}; each shopper's last events instead"
        last = _leave_last_folds(events, user_ids, item_ids, config)
        return last if isinstance(last, str) else Folds(last, "leave-last", why)
    if protocol == "leave-last":
        last = _leave_last_folds(events, user_ids, item_ids, config)
        return last if isinstance(last, str) else Folds(last, "leave-last", "configured")
    chance = _random_folds(events, user_ids, item_ids, config)
    return chance if isinstance(chance, str) else Folds(chance, "random", "configured")
