"""Tune stage: choose hyperparameters on a time-based validation split, within a budget.

Train on events before a cut-off, score the users who come back after it, and count as
hits the items they then bought (a repeat purchase counts: tuning learns whether to
recommend items again from whether people buy them again). Ranking goes through
`recsvc.scoring`, the code the service uses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.blend import standardize
from recsvc.errors import InputError
from recsvc.model import lookup
from recsvc.models import Recommender, TrainingData, UserBatch
from recsvc.models.ease import EASE, interaction_gram
from recsvc.scoring import rank_sources, source_scores
from training.clean import event_weights, has_quantities
from training.config import TrainConfig
from training.fit import build_cf, build_components, ease_enabled, fit_components
from training.metrics import ranking_metrics
from training.progress import Progress
from training.signals import build_training_data
from training.splits import is_target, time_split

WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
HALF_LIVES = (7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0, 730.0)
# Bound the dense score matrices the tuner holds: validation users x catalog size.
MAX_SCORE_CELLS = 40_000_000


@dataclass
class Split:
    train_events: pd.DataFrame
    users: np.ndarray  # validation users (numbers in the id universe)
    relevant: sp.csr_matrix  # len(users) x items: bought after the cut-off
    cutoff: int


@dataclass
class TuningResult:
    cf_params: dict[str, Any]
    half_life_days: float
    weights: dict[str, float]
    exclude_seen: bool
    ease_regularization: float | None = None
    quantity_scaling: str = "log"
    metrics: dict[str, float] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    budget_s: float = 0.0
    skipped: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "budget_s": self.budget_s,
            "trials": self.trials,
            "best": {"cf": self.cf_params, "half_life_days": self.half_life_days,
                     "quantity_scaling": self.quantity_scaling,
                     "ease_regularization": self.ease_regularization,
                     "weights": self.weights, "exclude_seen": self.exclude_seen},
            "validation_metrics": self.metrics,
        }


def validation_split(
    events: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    config: TrainConfig,
) -> Split | str:
    """The tuner's split — cut at a share of the time span (`splits.time_split`), then
    the returning shoppers' target events as what to predict — or the reason there is
    none worth tuning on."""
    tuning = config.tuning
    times = events["timestamp"].to_numpy(dtype=np.int64)
    if times.size == 0 or times.min() == times.max():
        return "all events share one timestamp"
    cutoff = int(times.min() + (1 - tuning.validation_fraction) * (times.max() - times.min()))
    try:
        cut = time_split(events, cutoff=cutoff)
    except InputError as exc:
        return str(exc)
    train, after = cut.train, cut.test
    targets = after.loc[is_target(after, tuning.target_events)]
    targets = targets.loc[targets["user_id"].isin(train["user_id"].unique())]
    users = lookup(user_ids, targets["user_id"].to_numpy(dtype=str))
    items = lookup(item_ids, targets["item_id"].to_numpy(dtype=str))
    unique_users = np.unique(users)
    if unique_users.size < tuning.min_validation_users:
        return (f"only {unique_users.size} users return after the cut-off "
                f"(need {tuning.min_validation_users})")
    cap = max(tuning.min_validation_users,
              min(tuning.max_validation_users, MAX_SCORE_CELLS // max(1, len(item_ids))))
    if unique_users.size > cap:
        rng = np.random.default_rng(tuning.seed)
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


class _Evaluator:
    """Scores one split with cached per-algorithm scores; tries blends cheaply."""

    def __init__(self, split: Split, candidates: np.ndarray, config: TrainConfig) -> None:
        self.split = split
        self.candidates = candidates
        self.k = config.tuning.k
        self.metric = f"{config.tuning.metric}@{config.tuning.k}"

    def metrics(self, sources: dict[str, np.ndarray], history: sp.csr_matrix,
                weights: dict[str, float], exclude_seen: bool) -> dict[str, float]:
        ranking = rank_sources(sources, weights, self.k, history, exclude_seen,
                               self.candidates, standardized=True)
        return ranking_metrics(ranking.items, self.split.relevant, self.k)

    def value(self, *args: Any) -> float:
        return self.metrics(*args)[self.metric]


def _sample_cf(rng: np.random.Generator, algorithm: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "factors": int(rng.choice([16, 32, 64, 128])),
        "regularization": float(np.round(10 ** rng.uniform(-3, 0.5), 4)),
        "alpha": float(np.round(10 ** rng.uniform(-0.5, 1.6), 3)),
        "iterations": int(rng.choice([10, 15, 25])),
        "learning_rate": 0.01,
    }
    if algorithm == "bpr":
        params["learning_rate"] = float(np.round(10 ** rng.uniform(-2.5, -1), 4))
        params["iterations"] = int(rng.choice([50, 100, 200]))
    return params


def tune(
    events: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    items: pd.DataFrame | None,
    attributes: dict[str, tuple[np.ndarray, list[str]]],
    candidates: np.ndarray,
    start: TuningResult,
    config: TrainConfig,
    progress: Progress,
) -> TuningResult:
    """Random search over factorization and decay settings, coordinate ascent over blend
    weights; stops when the next trial would overrun the time budget."""
    began = time.perf_counter()
    budget = config.tuning.time_budget_s
    split = validation_split(events, user_ids, item_ids, config)
    if isinstance(split, str):
        start.skipped = split
        progress.log("tune.skipped", reason=split)
        return start
    evaluator = _Evaluator(split, candidates, config)
    rng = np.random.default_rng(config.tuning.seed)
    quiet = Progress(quiet=True)
    cache: dict[tuple[float, str], tuple[TrainingData, dict[str, np.ndarray]]] = {}
    # Does buying 50 units say more than buying 1? Only where quantities are recorded,
    # and the data decides: repeat occasions often say more than volume.
    scalings = (["log", "none"] if has_quantities(split.train_events)
                else [start.quantity_scaling])
    other_scalings = [s for s in scalings if s != start.quantity_scaling]
    reweighted = {
        scaling: split.train_events.assign(weight=event_weights(
            split.train_events, config.events.model_copy(update={"quantity_scaling": scaling})))
        for scaling in scalings
    }

    def prepare(half_life: float, scaling: str) -> tuple[TrainingData, dict[str, np.ndarray]]:
        """Data and the non-CF algorithms' scores: they depend on the weighting alone."""
        if (half_life, scaling) not in cache:
            data = build_training_data(reweighted[scaling], user_ids, item_ids, half_life,
                                       items, attributes, reference_time=split.cutoff)
            components = build_components(config.model, data)
            components.pop("cf")
            components.pop("ease", None)  # fitted once below: it ignores the decay
            fit_components(components, data, quiet)
            cache[half_life, scaling] = (data, _standardized(components, data, split.users))
        return cache[half_life, scaling]

    ease: dict[str, np.ndarray] = {}

    def run_trial(half_life: float, scaling: str, params: dict[str, Any]
                  ) -> tuple[dict[str, np.ndarray], sp.csr_matrix]:
        data, sources = prepare(half_life, scaling)
        cf = build_cf(config.model, params).fit(data)
        return {**sources, **ease, **_standardized({"cf": cf}, data, split.users)}, \
            data.user_items[split.users]

    best = start
    trials: list[dict[str, Any]] = []
    with progress.step("tune", total=config.tuning.max_trials, budget_s=budget) as step:
        last = 0.0
        for trial in range(config.tuning.max_trials):
            elapsed = time.perf_counter() - began
            if trial > 0 and elapsed + 1.5 * last > budget:
                break
            t0 = time.perf_counter()
            scaling = start.quantity_scaling
            if trial == 0:
                half_life, params = start.half_life_days, dict(start.cf_params)
                if ease_enabled(config.model, len(item_ids)):
                    data, _ = prepare(half_life, scaling)
                    start.ease_regularization, ease["ease"] = _search_ease(
                        evaluator, data, split.users, start, began + budget / 3)
                    step.note(ease_regularization=start.ease_regularization)
            elif trial <= len(other_scalings):  # the same settings, weighted otherwise
                half_life, params = start.half_life_days, dict(start.cf_params)
                scaling = other_scalings[trial - 1]
            else:
                half_life = float(rng.choice(HALF_LIVES))
                params = _sample_cf(rng, config.model.cf_algorithm)
                scaling = str(rng.choice(scalings))
            sources, history = run_trial(half_life, scaling, params)
            weights, exclude = (best.weights, best.exclude_seen)
            exclude = max((True, False),
                          key=lambda e: evaluator.value(sources, history, weights, e))
            last = time.perf_counter() - t0  # what the next trial will cost, about
            if trial == 0:  # compare later trials under a blend fitted to the data
                weights, exclude = _search_weights(evaluator, sources, history, weights,
                                                   began + budget)
            metrics = evaluator.metrics(sources, history, weights, exclude)
            trials.append({"half_life_days": half_life, "quantity_scaling": scaling, "cf": params,
                           "metric": round(metrics[evaluator.metric], 5),
                           "seconds": round(last, 2)})
            if trial == 0 or metrics[evaluator.metric] > best.metrics[evaluator.metric]:
                best = TuningResult(params, half_life, dict(weights), exclude,
                                    start.ease_regularization, scaling, metrics)
                best_sources, best_history = sources, history
            step.advance()
        # Refine the blend around the best algorithms, if time is left.
        weights, exclude = _search_weights(evaluator, best_sources, best_history, best.weights,
                                           began + budget)
        metrics = evaluator.metrics(best_sources, best_history, weights, exclude)
        if metrics[evaluator.metric] >= best.metrics[evaluator.metric]:
            best.weights, best.exclude_seen, best.metrics = weights, exclude, metrics
        step.note(trials=len(trials), best=round(best.metrics[evaluator.metric], 5),
                  metric=evaluator.metric)
    best.trials = trials
    best.seconds = time.perf_counter() - began
    best.budget_s = budget
    return best


def _standardized(components: dict[str, Recommender], data: TrainingData,
                  users: np.ndarray) -> dict[str, np.ndarray]:
    batch = UserBatch(
        users=users,
        history=data.user_items[users],
        attributes={n: codes[users] for n, (codes, _) in data.user_attributes.items()},
    )
    return {name: standardize(scores)
            for name, scores in source_scores(components, batch).items()}


def _search_ease(
    evaluator: _Evaluator,
    data: TrainingData,
    users: np.ndarray,
    start: TuningResult,
    deadline: float,
) -> tuple[float, np.ndarray]:
    """EASE's one hyperparameter, by the model's own ranking quality: a coarse step of
    4x each way from the default, walking uphill, then one 2x refinement. XᵀX is computed
    once; each candidate costs one matrix inversion."""
    gram = interaction_gram(data.user_items)
    history = data.user_items[users]
    batch = UserBatch(users=users, history=history)
    tried: dict[float, tuple[float, np.ndarray]] = {}

    def value(r: float) -> float:
        if r not in tried:
            scores = standardize(EASE(r).fit_gram(gram).score(batch))
            tried[r] = (evaluator.value({"ease": scores}, history, {"ease": 1.0},
                                        start.exclude_seen), scores)
        return tried[r][0]

    best = start.ease_regularization or 16.0
    value(best)
    for factor in (4.0, 0.25):  # coarse: walk while it improves, in one direction
        moved = False
        while time.perf_counter() < deadline and len(tried) < 8:
            if value(best * factor) <= value(best):
                break
            best, moved = best * factor, True
        if moved:
            break
    for factor in (2.0, 0.5):  # fine
        if time.perf_counter() < deadline and value(best * factor) > value(best):
            best *= factor
    return best, tried[best][1]


def _search_weights(
    evaluator: _Evaluator,
    sources: dict[str, np.ndarray],
    history: sp.csr_matrix,
    weights: dict[str, float],
    deadline: float,
) -> tuple[dict[str, float], bool]:
    """Coordinate ascent over a grid of weights, for both answers to 'recommend items
    already bought?'. Stops at the deadline with the best found so far."""
    best_weights, best_exclude, best_value = dict(weights), True, -1.0
    for exclude in (True, False):
        current = {name: weights.get(name, 0.0) for name in sources}
        value = evaluator.value(sources, history, current, exclude)
        for _ in range(2):
            improved = False
            for name in sources:
                if exclude and name == "history":
                    continue  # bought items are filtered out: their scores do not matter
                for candidate in WEIGHT_GRID:
                    if candidate == current[name] or time.perf_counter() > deadline:
                        continue
                    trial = {**current, name: candidate}
                    if not any(trial.values()):
                        continue
                    v = evaluator.value(sources, history, trial, exclude)
                    if v > value + 1e-9:
                        current, value, improved = trial, v, True
            if not improved:
                break
        if value > best_value:
            best_weights, best_exclude, best_value = current, exclude, value
    return best_weights, best_exclude
