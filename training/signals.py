"""Weight stage: events -> one confidence per user and item.

confidence(u, i) = sum over u's events on i of weight(event) * 0.5 ** (age / half-life),
clipped at zero, so a refund cancels its purchase and repeat purchases add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.core.algorithms import TrainingData
from recsvc.core.algorithms.base import RECENT
from recsvc.core.clock import SECONDS_PER_DAY
from recsvc.core.model import lookup
from recsvc.core.policy.events import NEGATIVE, SEARCH, net_purchases

OCCASION_FLOOR = np.float32(1e-30)  # > 0 in float32, below any real decayed weight


def decay(ages_seconds: np.ndarray, half_life_days: float) -> np.ndarray:
    half_lives = np.maximum(ages_seconds, 0) / (half_life_days * SECONDS_PER_DAY)
    return np.exp2(-half_lives.astype(np.float32))


def confidence_matrix(
    users: np.ndarray, items: np.ndarray, weights: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    matrix = sp.csr_matrix(
        (weights.astype(np.float64), (users, items)), shape=shape
    )  # duplicates are summed
    matrix.data = np.maximum(matrix.data, 0.0)
    matrix.eliminate_zeros()
    return sp.csr_matrix(matrix, dtype=np.float32)


def index_of(values: pd.Series, sorted_ids: np.ndarray) -> np.ndarray:
    """Position of each value in `sorted_ids` (-1 if absent), looking up each distinct
    value once: millions of events name far fewer users and items."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    positions = lookup(sorted_ids, np.asarray(uniques, dtype=str))
    return np.where(codes >= 0, positions[np.maximum(codes, 0)], -1)


def repeat_purchase_rate(events: pd.DataFrame) -> float:
    """Share of purchases of an item the same user had bought before."""
    purchases = events.loc[events["event_type"] == "purchase", ["user_id", "item_id", "timestamp"]]
    if len(purchases) == 0:
        return 0.0
    ordered = purchases.sort_values("timestamp", kind="stable")
    return float(ordered.duplicated(subset=["user_id", "item_id"]).mean())


def build_training_data(
    events: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    half_life_days: float,
    items: pd.DataFrame | None = None,
    user_attributes: dict[str, tuple[np.ndarray, list[str]]] | None = None,
    reference_time: int | None = None,
) -> TrainingData:
    """Index events by the given (sorted) id arrays and build the decayed matrix."""
    users = index_of(events["user_id"], user_ids)
    items_idx = index_of(events["item_id"], item_ids)
    keep = (users >= 0) & (items_idx >= 0)
    users, items_idx = users[keep], items_idx[keep]
    times = events["timestamp"].to_numpy(dtype=np.int64)[keep]
    weights = events["weight"].to_numpy(dtype=np.float64)[keep]
    types = events["event_type"].astype("category")  # a few names, millions of rows
    per_type = np.append(net_purchases(np.asarray(types.cat.categories, dtype=object)), 0)
    bought = per_type[types.cat.codes.to_numpy()][keep]  # code -1 (none): the last, 0
    searched = (np.asarray(types.cat.categories == SEARCH).tolist() + [False])
    searched = np.asarray(searched)[types.cat.codes.to_numpy()][keep]
    touched = (weights > 0) & ~searched  # what "next after X" may name as X
    if reference_time is None:
        reference_time = int(times.max()) if times.size else 0
    decayed = weights * decay(reference_time - times, half_life_days)
    matrix = confidence_matrix(users, items_idx, decayed, (len(user_ids), len(item_ids)))
    return TrainingData(
        user_items=matrix,
        event_users=users,
        event_items=items_idx,
        event_weights=weights.astype(np.float32),
        event_times=times,
        reference_time=int(reference_time),
        items=items,
        user_attributes=dict(user_attributes or {}),
        user_purchases=purchase_matrix(users, items_idx, bought, times, reference_time,
                                       half_life_days, (len(user_ids), len(item_ids))),
        user_negatives=negative_matrix(users, items_idx, types.cat.codes.to_numpy()[keep],
                                       list(types.cat.categories), weights, times,
                                       (len(user_ids), len(item_ids))),
        user_search_only=search_only_matrix(users, items_idx, searched,
                                            (len(user_ids), len(item_ids))),
        user_recent=last_items(users[touched], items_idx[touched], times[touched],
                               len(user_ids)),
        event_bought=bought.astype(np.int8),
    )


def last_items(users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int,
               count: int = RECENT) -> np.ndarray:
    """Users x `count`: each user's last distinct items, newest first, -1 padded."""
    order = np.lexsort((-np.arange(users.size), -times, users))  # newest first per user
    users, items = users[order], items[order]
    first = ~pd.DataFrame({"u": users, "i": items}).duplicated().to_numpy()
    users, items = users[first], items[first]
    starts = np.searchsorted(users, np.arange(n_users))
    rank = np.arange(users.size) - starts[users]
    keep = rank < count
    out = np.full((n_users, count), -1, dtype=np.int32)
    out[users[keep], rank[keep]] = items[keep]
    return out


def search_only_matrix(users: np.ndarray, items: np.ndarray, searched: np.ndarray,
                       shape: tuple[int, int]) -> sp.csr_matrix | None:
    """Users x items, True where every event of the pair was a search's match (None:
    no searches at all)."""
    if not searched.any():
        return None
    other = sp.csr_matrix((np.ones(int((~searched).sum()), np.int8),
                           (users[~searched], items[~searched])), shape=shape)
    search = sp.csr_matrix((np.ones(int(searched.sum()), np.int8),
                            (users[searched], items[searched])), shape=shape)
    search.data[:] = 1
    other.data[:] = 1
    only = search - search.multiply(other)
    only.eliminate_zeros()
    only.sort_indices()
    return sp.csr_matrix(only, dtype=bool)


def negative_matrix(users: np.ndarray, items: np.ndarray, codes: np.ndarray,
                    names: list[str], weights: np.ndarray, times: np.ndarray,
                    shape: tuple[int, int]) -> sp.csr_matrix:
    """Users x items, the strength (`events.NEGATIVE`) of each standing "no": the latest
    negative event on the pair, unless the shopper engaged with the item after it."""
    strength = np.array([NEGATIVE.get(str(n), 0.0) for n in names] + [0.0],
                        dtype=np.float32)[np.where(codes >= 0, codes, len(names))]
    negative = strength > 0
    if not negative.any():
        return sp.csr_matrix(shape, dtype=np.float32)
    frame = pd.DataFrame({"u": users, "i": items, "t": times, "s": strength,
                          "neg": negative, "pos": ~negative & (weights > 0)})
    last_no = (frame[frame["neg"]].sort_values("t", kind="stable")
               .groupby(["u", "i"], sort=False).tail(1).set_index(["u", "i"]))
    last_yes = frame[frame["pos"]].groupby(["u", "i"])["t"].max()
    after = last_yes.reindex(last_no.index).to_numpy()
    standing = last_no[~(after >= last_no["t"].to_numpy())]  # NaN (no yes): stands
    u = standing.index.get_level_values(0).to_numpy()
    i = standing.index.get_level_values(1).to_numpy()
    matrix = sp.csr_matrix((standing["s"].to_numpy(np.float32), (u, i)), shape=shape,
                           dtype=np.float32)
    matrix.sort_indices()
    return matrix


def purchase_matrix(users: np.ndarray, items: np.ndarray, net: np.ndarray,
                    times: np.ndarray, reference_time: int, half_life_days: float,
                    shape: tuple[int, int]) -> sp.csr_matrix:
    """Users x items, the shopper's purchase occasions of the item: each day they bought
    it counts once, whatever the quantity or the number of order lines, decayed by the
    age of that day's last purchase; only where purchases outnumber refunds
    (`net_purchases`), elsewhere nothing. Occasions, not volume, predict a reorder: a
    wholesaler's one order of 500 is one occasion."""
    counted = net != 0
    net_sum = sp.csr_matrix((net[counted], (users[counted], items[counted])), shape=shape,
                            dtype=np.int32)  # duplicates are summed
    kept = sp.csr_matrix(net_sum > 0, dtype=np.float32)
    if kept.nnz == 0:
        return sp.csr_matrix(shape, dtype=np.float32)
    bought = net > 0
    u, i, t = users[bought], items[bought], times[bought]
    day = t // int(SECONDS_PER_DAY)
    order = np.lexsort((-t, day, i, u))  # per (user, item, day): the latest first
    u, i, t, day = u[order], i[order], t[order], day[order]
    first = np.ones(u.size, dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1]) | (day[1:] != day[:-1])
    # Floored: a purchase decayed to nothing is still a purchase (what reasons may name).
    weight = np.maximum(decay(reference_time - t[first], half_life_days), OCCASION_FLOOR)
    occasions = sp.csr_matrix((weight.astype(np.float64), (u[first], i[first])),
                              shape=shape)  # the days of a pair are summed
    out = sp.csr_matrix(occasions.multiply(kept), dtype=np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out
