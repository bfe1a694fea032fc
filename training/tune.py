"""Tune stage: choose hyperparameters on validation folds, within a budget.

Each fold trains on part of the log and scores its validation users on what they went
on to buy (a repeat purchase counts: tuning learns whether to recommend items again
from whether people buy them again). The folds follow the shop's protocol
(`training.folds`: time windows by default), and their users are judged together.
Ranking goes through `recsvc.core.ranking.scoring`, the code the service uses.

The tuner never ends worse than where it started: the untuned defaults and plain
popularity are scored on the same shoppers, and a challenger replaces the defaults only
when its gain holds under a bootstrap over those shoppers (`choose`).

What is tuned comes from the algorithms' own declarations (`Recommender`): those that
follow the event weighting are refitted for each weighting tried; one with a `walk`
parameter has it searched by its own ranking quality; one that can `draw` settings
gets fresh draws in the later trials. Every registered algorithm takes part."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.core.algorithms import Popularity, Recommender, TrainingData, algorithm
from recsvc.core.algorithms.base import Reason
from recsvc.core.ranking.scoring import blend_and_rank, dense_scores
from training.choice import choose, shrink
from training.clean import event_weights, has_quantities
from training.config import TrainConfig
from training.fit import build, build_components, fit_components, unusable
from training.folds import Split, validation_folds
from training.metrics import per_user_metric, ranking_metrics
from training.progress import Progress
from training.signals import build_training_data

WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
HALF_LIVES = (7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0, 730.0)


@dataclass
class TuningResult:
    params: dict[str, dict[str, Any]]  # algorithm -> settings chosen (over the config's)
    half_life_days: float
    weights: dict[str, float]
    exclude_seen: bool
    quantity_scaling: str = "log"
    metrics: dict[str, float] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    budget_s: float = 0.0
    skipped: str | None = None
    protocol: dict[str, Any] = field(default_factory=dict)  # folds: how, why, how many
    choice: dict[str, Any] = field(default_factory=dict)  # tuned, defaults or popularity

    def summary(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
            "budget_s": self.budget_s,
            "protocol": self.protocol,
            "choice": self.choice,
            "trials": self.trials,
            "best": {"params": self.params, "half_life_days": self.half_life_days,
                     "quantity_scaling": self.quantity_scaling,
                     "weights": self.weights, "exclude_seen": self.exclude_seen},
            "validation_metrics": self.metrics,
        }


class _Evaluator:
    """Scores the folds' validation users (their rows stacked) with cached per-algorithm
    scores; tries blends cheaply."""

    def __init__(self, relevant: sp.csr_matrix, candidates: np.ndarray,
                 config: TrainConfig) -> None:
        self.relevant = relevant
        self.candidates = candidates
        self.k = config.tuning.k
        self.metric = f"{config.tuning.metric}@{config.tuning.k}"

    def metrics(self, sources: dict[str, np.ndarray], history: sp.csr_matrix,
                weights: dict[str, float], exclude_seen: bool) -> dict[str, float]:
        ranking = blend_and_rank(sources, weights, self.k, self.candidates,
                                 history if exclude_seen else None)
        return ranking_metrics(ranking.items, self.relevant, self.k)

    def value(self, *args: Any) -> float:
        return self.metrics(*args)[self.metric]

    def per_user(self, sources: dict[str, np.ndarray], history: sp.csr_matrix,
                 weights: dict[str, float], exclude_seen: bool) -> np.ndarray:
        """The tuning metric of each validation shopper, for the bootstrap."""
        ranking = blend_and_rank(sources, weights, self.k, self.candidates,
                                 history if exclude_seen else None)
        return per_user_metric(ranking.items, self.relevant, self.k, self.metric)


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
    """Search in stages, each under the blend fitted at the start: the quantity weighting,
    then every decay half-life, then drawn settings at random; coordinate ascent over
    blend weights at the start and at the end. Stops when the next trial would overrun
    the time budget. Deciding the weighting on a fixed grid before drawing settings
    keeps a lucky draw (CF's) from choosing the decay for every algorithm."""
    began = time.perf_counter()
    budget = config.tuning.time_budget_s
    chosen = validation_folds(events, user_ids, item_ids, config)
    if isinstance(chosen, str):
        start.skipped = f"{config.tuning.split} protocol: {chosen}"
        if config.tuning.split == "time":  # say what would tune rather than skip
            start.skipped += ("; --tune-split auto falls back to each shopper's last "
                              "events, random to a share of each shopper's pairs")
        progress.log("tune.skipped", reason=start.skipped)
        return start
    folds = chosen.splits
    protocol = {"split": chosen.protocol, "why": chosen.why, "folds": len(folds),
                "users": [int(fold.users.size) for fold in folds]}
    progress.log("tune.folds", protocol=chosen.protocol, why=chosen.why, folds=len(folds),
                 users=",".join(str(fold.users.size) for fold in folds))
    evaluator = _Evaluator(sp.vstack([fold.relevant for fold in folds], format="csr"),
                           candidates, config)
    rng = np.random.default_rng(config.tuning.seed)
    quiet = Progress(quiet=True)
    model = config.model
    # Each algorithm's part in the search, by what it declares.
    enabled = model.enabled()
    drawn = [n for n in enabled if algorithm(n).draws()]
    fixed = [n for n in enabled if n not in drawn and not algorithm(n).follows_weighting]
    refitted = [n for n in enabled if n not in drawn and n not in fixed]
    cache: dict[tuple[float, str], tuple[list[TrainingData], dict[str, np.ndarray]]] = {}
    # Does buying 50 units say more than buying 1? Only where quantities are recorded,
    # and the data decides: repeat occasions often say more than volume.
    scalings = (["log", "none"] if has_quantities(folds[0].train_events)
                else [start.quantity_scaling])
    other_scalings = [s for s in scalings if s != start.quantity_scaling]
    decays = [h for h in HALF_LIVES if h != start.half_life_days]
    reweighted = {
        (at, scaling): fold.train_events.assign(weight=event_weights(
            fold.train_events, config.events.model_copy(update={"quantity_scaling": scaling})))
        for at, fold in enumerate(folds) for scaling in scalings
    }

    def prepare(half_life: float, scaling: str
                ) -> tuple[list[TrainingData], dict[str, np.ndarray]]:
        """Each fold's data and the scores of the algorithms refitted per weighting, the
        folds' rows stacked: they depend on the weighting alone."""
        if (half_life, scaling) not in cache:
            datas, parts = [], []
            for at, fold in enumerate(folds):
                data = build_training_data(reweighted[at, scaling], user_ids, item_ids,
                                           half_life, items, attributes,
                                           reference_time=fold.cutoff)
                components = fit_components(build_components(model, data, refitted), data,
                                            quiet)
                datas.append(data)
                parts.append(_scores(components, data, fold.users))
            cache[half_life, scaling] = (datas, _stacked(parts))
        return cache[half_life, scaling]

    # Fitted once (they ignore the weighting), on the starting weighting's folds.
    once: dict[str, np.ndarray] = {}

    def run_trial(half_life: float, scaling: str, params: dict[str, dict[str, Any]]
                  ) -> tuple[dict[str, np.ndarray], sp.csr_matrix]:
        datas, sources = prepare(half_life, scaling)
        per_trial = [_scores({name: build(model, name, **params.get(name, {})).fit(data)
                              for name in drawn if name not in skipped}, data, fold.users)
                     for data, fold in zip(datas, folds, strict=True)]
        return {**sources, **once, **_stacked(per_trial)}, _histories(datas, folds)

    best = start
    trials: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with progress.step("tune", total=config.tuning.max_trials, budget_s=budget) as step:
        last = 0.0
        for trial in range(config.tuning.max_trials):
            elapsed = time.perf_counter() - began
            if trial > 0 and elapsed + 1.5 * last > budget:
                break
            t0 = time.perf_counter()
            scaling = start.quantity_scaling
            if trial == 0:
                half_life, params = start.half_life_days, dict(start.params)
                datas, _ = prepare(half_life, scaling)
                skipped = unusable(model, datas[0])
                for name in fixed:
                    if name in skipped:
                        continue
                    if algorithm(name).walk is not None:
                        value, once[name] = _walk(name, evaluator, datas, folds, start, config,
                                                  began + budget / 3)
                        start.params = {**start.params,
                                        name: {algorithm(name).walk: value}}
                        step.note(**{f"{name}_{algorithm(name).walk}": value})
                    else:
                        once.update(_stacked([_scores(
                            {name: build(model, name).fit(data)}, data, fold.users)
                            for data, fold in zip(datas, folds, strict=True)]))
                params = dict(start.params)
            elif trial <= len(other_scalings):  # the same settings, weighted otherwise
                half_life, params = start.half_life_days, dict(start.params)
                scaling = other_scalings[trial - 1]
            elif trial <= len(other_scalings) + len(decays):  # each decay, settings as best
                half_life = decays[trial - 1 - len(other_scalings)]
                params, scaling = dict(best.params), best.quantity_scaling
            else:  # settings drawn at random, under the best weighting
                half_life, scaling = best.half_life_days, best.quantity_scaling
                params = {**best.params, **{
                    name: algorithm(name).draw(rng, build(model, name).params) or {}
                    for name in drawn}}
            sources, history = run_trial(half_life, scaling, params)
            weights, exclude = (best.weights, best.exclude_seen)
            exclude = max((True, False),
                          key=lambda e: evaluator.value(sources, history, weights, e))
            last = time.perf_counter() - t0  # what the next trial will cost, about
            if trial == 0:  # compare later trials under a blend fitted to the data
                # The starting point, as configured, and popularity alone: the tuner's
                # result must beat them on these shoppers to be chosen (`choose`).
                baselines = {
                    "defaults": (evaluator.per_user(sources, history, start.weights,
                                                    start.exclude_seen),
                                 TuningResult(dict(params), half_life, dict(start.weights),
                                              start.exclude_seen, scaling,
                                              evaluator.metrics(sources, history,
                                                                start.weights,
                                                                start.exclude_seen)))}
                if Popularity.name in sources:
                    alone = {Popularity.name: 1.0}
                    baselines["popularity"] = (
                        evaluator.per_user(sources, history, alone, start.exclude_seen),
                        TuningResult(dict(params), half_life, alone, start.exclude_seen,
                                     scaling, evaluator.metrics(sources, history, alone,
                                                                start.exclude_seen)))
                weights, exclude = _search_weights(evaluator, sources, history, weights,
                                                   began + budget)
            metrics = evaluator.metrics(sources, history, weights, exclude)
            trials.append({"half_life_days": half_life, "quantity_scaling": scaling,
                           "params": {n: params.get(n, {}) for n in drawn},
                           "metric": round(metrics[evaluator.metric], 5),
                           "seconds": round(last, 2)})
            if trial == 0 or metrics[evaluator.metric] > best.metrics[evaluator.metric]:
                best = TuningResult(params, half_life, dict(weights), exclude, scaling,
                                    metrics)
                best_sources, best_history = sources, history
            # Only the best weighting's scores are used again: free the others (each
            # holds validation users x catalog cells per algorithm).
            for key in [k for k in cache if k != (best.half_life_days, best.quantity_scaling)]:
                del cache[key]
            progress.log("tune.trial", trial=trial, metric=trials[-1]["metric"],
                         best=round(best.metrics[evaluator.metric], 5),
                         seconds=trials[-1]["seconds"],
                         elapsed=round(time.perf_counter() - began, 1))
            step.advance()
        # Refine the blend around the best algorithms, if time is left.
        weights, exclude = _search_weights(evaluator, best_sources, best_history, best.weights,
                                           began + budget)
        metrics = evaluator.metrics(best_sources, best_history, weights, exclude)
        if metrics[evaluator.metric] >= best.metrics[evaluator.metric]:
            best.weights, best.exclude_seen, best.metrics = weights, exclude, metrics
        searched = dict(best.weights)
        shrunk, share = shrink(start.weights, searched, evaluator.relevant.shape[0],
                               config.tuning.shrink_users)
        best.weights = dict(shrunk)
        best.metrics = evaluator.metrics(best_sources, best_history, best.weights,
                                         best.exclude_seen)
        tuned = evaluator.per_user(best_sources, best_history, best.weights, best.exclude_seen)
        best, choice = choose({**baselines, "tuned": (tuned, best)}, config.tuning.seed)
        choice["shrink"] = {"share": round(share, 4), "searched": searched,
                            "shrunk": shrunk}
        step.note(trials=len(trials), best=round(best.metrics[evaluator.metric], 5),
                  metric=evaluator.metric, choice=choice["chosen"])
    progress.log("tune.choice", **{k: v for k, v in choice.items() if k != "candidates"})
    best.trials = trials
    best.seconds = time.perf_counter() - began
    best.budget_s = budget
    best.protocol = protocol
    best.choice = choice
    return best


def _stacked(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The folds' score planes as one: the validation users of every fold, in fold order."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.vstack([part[name] for part in parts]) for name in parts[0]}


def _histories(datas: list[TrainingData], folds: list[Split]) -> sp.csr_matrix:
    """Each fold's validation users' past, in the order of `_stacked`."""
    return sp.vstack([data.user_items[fold.users] for data, fold in zip(datas, folds,
                                                                         strict=True)],
                     format="csr")


def _scores(components: dict[str, Recommender], data: TrainingData,
            users: np.ndarray) -> dict[str, np.ndarray]:
    """The algorithms' dense scores for the fold's validation users (the blend
    standardizes them)."""
    return dense_scores(components, data.batch(users))


def _walk(
    name: str,
    evaluator: _Evaluator,
    datas: list[TrainingData],
    folds: list[Split],
    start: TuningResult,
    config: TrainConfig,
    deadline: float,
) -> tuple[float, np.ndarray]:
    """An algorithm's `walk` parameter, by the algorithm's own ranking quality: a coarse
    step of 4x each way from the configured value, walking uphill, then one 2x
    refinement. What does not depend on the parameter is prepared once per fold
    (`Recommender.prepare`: EASE's XᵀX); each candidate is one `fit_prepared` per fold."""
    cls = algorithm(name)
    param = cls.walk
    assert param is not None
    preparer = build(config.model, name)
    prepared = [preparer.prepare(data) for data in datas]
    batches = [data.batch(fold.users) for data, fold in zip(datas, folds, strict=True)]
    history = _histories(datas, folds)
    tried: dict[float, tuple[float, np.ndarray]] = {}

    def value(r: float) -> float:
        if r not in tried:
            scores = _stacked([{name: build(config.model, name, **{param: r})
                                .fit_prepared(p).score(batch)}
                               for p, batch in zip(prepared, batches, strict=True)])[name]
            tried[r] = (evaluator.value({name: scores}, history, {name: 1.0},
                                        start.exclude_seen), scores)
        return tried[r][0]

    best = float(getattr(build(config.model, name).params, param))
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
                if exclude and algorithm(name).reason is Reason.OWN_PAST:
                    continue  # it scores bought items, which are filtered out here
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
