"""Score a model on held-out events: accuracy and beyond-accuracy metrics at several k,
per algorithm and for the blend, per user and item group, and the promotion gate.

Every list is ranked by `recsvc.core.ranking.scoring.recommend`, the function the
service calls, with the same filters (stock, already-bought items as trained), so offline
numbers are what the storefront would show. Metric definitions: training/metrics.py and
docs/metrics.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.core.algorithms import UserBatch
from recsvc.core.model import RecommenderModel
from recsvc.core.ranking.scoring import recommend
from training.metrics import beyond_accuracy, item_popularity, most_popular, ranking_metrics
from training.splits import is_target

# Bound the dense score matrix of one batch: rows x catalog size.
MAX_BATCH_CELLS = 20_000_000
# Items outside the most popular 20% of the catalog are the long tail.
HEAD_FRACTION = 0.2
# A user attribute with more values than this is not broken down into groups.
MAX_GROUP_VALUES = 20


@dataclass
class TestSet:
    """Held-out truth for one model: who is tested and what they went on to buy."""

    user_ids: np.ndarray  # str, one per test user
    users: np.ndarray  # the model's user number, -1 for a user it has never seen
    relevant: sp.csr_matrix  # test users x model items
    n_relevant: np.ndarray  # relevant items per user, items unknown to the model included
    unknown_relevant: np.ndarray  # of which unknown to the model
    attributes: dict[str, np.ndarray]  # the model's attribute codes per test user, -1
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.user_ids.size)


def build_test_set(
    model: RecommenderModel,
    test_events: pd.DataFrame,
    target_events: list[str],
    users_table: pd.DataFrame | None = None,
) -> TestSet:
    """Test users are those with a target event in `test_events`; users who refused
    consent are left out (they are never personalized, so never evaluated either)."""
    targets = test_events.loc[is_target(test_events, target_events), ["user_id", "item_id"]]
    pairs = targets.astype(str).drop_duplicates()
    opted_out = model.opted_out_mask(pairs["user_id"].to_numpy(dtype=str))
    skipped = int(np.unique(pairs.loc[opted_out, "user_id"].to_numpy(dtype=str)).size)
    pairs = pairs.loc[~opted_out]
    user_ids, user_row = np.unique(pairs["user_id"].to_numpy(dtype=str), return_inverse=True)
    items = model.item_index(pairs["item_id"].to_numpy())
    known_item = items >= 0
    relevant = sp.csr_matrix(
        (np.ones(int(known_item.sum()), np.float32), (user_row[known_item], items[known_item])),
        shape=(user_ids.size, model.n_items))
    n_relevant = np.bincount(user_row, minlength=user_ids.size)
    unknown = np.bincount(user_row[~known_item], minlength=user_ids.size)
    users = model.user_index(user_ids)
    return TestSet(
        user_ids=user_ids,
        users=users,
        relevant=relevant,
        n_relevant=n_relevant,
        unknown_relevant=unknown,
        attributes=_attribute_codes(model, user_ids, users, users_table),
        counts={"target_events": int(len(targets)),
                "opted_out_users_skipped": skipped,
                "users": int(user_ids.size),
                "relevant_pairs": int(len(pairs)),
                "relevant_items_unknown_to_model": int(unknown.sum())},
    )


def _attribute_codes(
    model: RecommenderModel,
    user_ids: np.ndarray,
    users: np.ndarray,
    users_table: pd.DataFrame | None,
) -> dict[str, np.ndarray]:
    """The model's codes for each test user's attributes: stored for users it knows,
    from the user table (when given) for the others."""
    out: dict[str, np.ndarray] = {}
    table = None
    if users_table is not None:
        table = users_table.assign(user_id=users_table["user_id"].astype(str))
        table = table.drop_duplicates("user_id").set_index("user_id").reindex(user_ids)
    for name, (codes, values) in model.user_attributes.items():
        per_user = np.where(users >= 0, codes[np.maximum(users, 0)], -1).astype(np.int32)
        if table is not None and name in table.columns:
            code_of = {str(v): i for i, v in enumerate(values)}
            given = table[name].astype("string").str.strip()
            from_table = given.map(code_of).fillna(-1).to_numpy(dtype=np.int32)
            per_user = np.where(users < 0, from_table, per_user)
        out[name] = per_user
    return out


def rank_test_users(
    model: RecommenderModel, test: TestSet, k: int, weights: dict[str, float] | None = None,
    exclude_seen: bool | None = None,
) -> list[np.ndarray]:
    """Each test user's top k through the service's scoring path, in batches
    (`exclude_seen`: None, as the model was trained)."""
    rows_per_batch = max(1, MAX_BATCH_CELLS // max(1, model.n_items))
    ranked: list[np.ndarray] = []
    for start in range(0, len(test), rows_per_batch):
        users = test.users[start:start + rows_per_batch]
        known = users >= 0
        history = sp.diags(known.astype(np.float32)) @ model.user_items[np.maximum(users, 0)]
        batch = UserBatch(
            users=users,
            history=sp.csr_matrix(history, dtype=np.float32),
            attributes={name: codes[start:start + rows_per_batch]
                        for name, codes in test.attributes.items()},
            recent=model.recent_rows(users),
            bought=model.occasion_rows(users),
        )
        ranked.extend(recommend(model, batch, k, exclude_seen, weights=weights).items)
    return ranked


@dataclass
class Evaluation:
    model_version: str
    ks: list[int]
    models: dict[str, dict[str, float]]  # "blend" and each algorithm -> metric@k -> value
    groups: dict[str, dict[str, float]]  # group -> {"users": n, metric@k: value} (blend)
    test: dict[str, Any]

    @property
    def metrics(self) -> dict[str, float]:
        return self.models["blend"]


def evaluate(
    model: RecommenderModel,
    test: TestSet,
    ks: list[int],
    algorithms: list[str] | None = None,
    exclude_seen: bool | None = None,
) -> Evaluation:
    """The blend and, side by side under the same filters, each algorithm alone.

    `exclude_seen` None ranks as the model was trained to serve; True is for a random
    split, whose held-out pairs are unseen in training by construction, so a model that
    re-recommends past purchases would be judged on items the test can never contain."""
    ks = sorted(set(ks))
    k_max = ks[-1]
    if algorithms is None:
        algorithms = ["blend", *sorted(model.components)]
    elif "blend" not in algorithms:
        algorithms = ["blend", *algorithms]  # the headline figures are the blend's
    popularity = item_popularity(model.user_items)
    categories = model.item_category if (model.item_category >= 0).any() else None
    models: dict[str, dict[str, float]] = {}
    blend_ranked: list[np.ndarray] = []
    for name in algorithms:
        weights = None if name == "blend" else {name: 1.0}
        ranked = rank_test_users(model, test, k_max, weights, exclude_seen)
        if name == "blend":
            blend_ranked = ranked
        values: dict[str, float] = {}
        for k in ks:
            values.update(ranking_metrics(ranked, test.relevant, k, test.n_relevant))
            values.update(beyond_accuracy(ranked, k, popularity, model.n_users, categories))
        models[name] = values
    groups, thresholds = _group_metrics(model, test, blend_ranked, ks, popularity)
    return Evaluation(
        model_version=model.version,
        ks=ks,
        models=models,
        groups=groups,
        test={**test.counts, **thresholds},
    )


def _group_metrics(
    model: RecommenderModel,
    test: TestSet,
    ranked: list[np.ndarray],
    ks: list[int],
    popularity: np.ndarray,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """New, light, medium and heavy users (terciles of training items among users with
    any); each value of each user attribute; and relevant items in the long tail."""
    trained_items = np.where(test.users >= 0,
                             np.diff(model.user_items.indptr)[np.maximum(test.users, 0)], 0)
    returning = trained_items > 0
    masks: dict[str, np.ndarray] = {"new_users": ~returning}
    thresholds: dict[str, Any] = {}
    if returning.any():
        light_max, heavy_min = np.quantile(trained_items[returning], [1 / 3, 2 / 3])
        masks["light_users"] = returning & (trained_items <= light_max)
        masks["medium_users"] = returning & (trained_items > light_max) & (
            trained_items <= heavy_min)
        masks["heavy_users"] = returning & (trained_items > heavy_min)
        thresholds = {"light_users_max_items": float(light_max),
                      "heavy_users_above_items": float(heavy_min)}
    for name, (_, values) in model.user_attributes.items():
        if len(values) > MAX_GROUP_VALUES:
            continue
        for code, value in enumerate(values):
            masks[f"{name}={value}"] = test.attributes[name] == code

    groups: dict[str, dict[str, float]] = {}
    for group, mask in masks.items():
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            continue
        subset = [ranked[r] for r in rows]
        values: dict[str, float] = {"users": int(rows.size)}
        for k in ks:
            values.update(ranking_metrics(subset, test.relevant[rows], k, test.n_relevant[rows]))
        groups[group] = values

    # Long-tail items: the same lists, scored against relevant tail items only (items the
    # model has never seen are tail items too).
    tail = ~most_popular(popularity, HEAD_FRACTION)
    tail_relevant = test.relevant @ sp.diags(tail.astype(np.float32))
    tail_relevant = sp.csr_matrix(tail_relevant)
    tail_relevant.eliminate_zeros()
    n_tail = np.diff(tail_relevant.indptr) + test.unknown_relevant
    if (n_tail > 0).any():
        values = {"users": int((n_tail > 0).sum())}
        for k in ks:
            values.update(ranking_metrics(ranked, tail_relevant, k, n_tail))
        groups["long_tail_items"] = values
    return groups, thresholds


@dataclass(frozen=True)
class GateResult:
    """Pass when candidate >= baseline x (1 - tolerance) on the gate metric."""

    metric: str
    candidate: float
    baseline: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.candidate >= self.baseline * (1.0 - self.tolerance) - 1e-12

    def summary(self) -> dict[str, Any]:
        return {"metric": self.metric, "candidate": self.candidate, "baseline": self.baseline,
                "tolerance": self.tolerance, "passed": self.passed}


def gate(candidate: dict[str, float], baseline: dict[str, float], metric: str,
         tolerance: float) -> GateResult:
    if metric not in candidate or metric not in baseline:
        raise KeyError(metric)
    return GateResult(metric, float(candidate[metric]), float(baseline[metric]), tolerance)
