"""Fit stage: build each algorithm from the config and fit it on the weighted data."""

from __future__ import annotations

from typing import Any

from recsvc.models import (
    EASE,
    ContentModel,
    ItemKNN,
    MatrixFactorization,
    Popularity,
    PurchaseHistory,
    Recommender,
    TrainingData,
    Trending,
)
from training.config import ModelConfig
from training.progress import Progress

CF_PARAMS = ("factors", "regularization", "alpha", "iterations", "learning_rate")


def cf_params(config: ModelConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in CF_PARAMS}


def build_cf(config: ModelConfig, params: dict[str, Any]) -> MatrixFactorization:
    return MatrixFactorization(algorithm=config.cf_algorithm, random_state=config.random_state,
                               **params)


def ease_enabled(config: ModelConfig, n_items: int) -> bool:
    return config.ease and 0 < n_items <= config.ease_max_items


def build_components(
    config: ModelConfig,
    data: TrainingData,
    params: dict[str, Any] | None = None,
    ease_regularization: float | None = None,
) -> dict[str, Recommender]:
    """Unfitted algorithms, by the name the blend weights use."""
    components: dict[str, Recommender] = {
        "cf": build_cf(config, params or cf_params(config)),
        "item_knn": ItemKNN(config.item_knn_measure, config.item_knn_neighbours),
        "popularity": Popularity(config.popularity_attributes),
        "trending": Trending(config.trending_window_days, config.trending_half_life_days),
        "history": PurchaseHistory(),
    }
    if ease_enabled(config, data.n_items):
        components["ease"] = EASE(ease_regularization or config.ease_regularization)
    if config.content and data.items is not None and len(data.items.columns) > 1:
        components["content"] = ContentModel()
    return components


def fit_components(
    components: dict[str, Recommender], data: TrainingData, progress: Progress
) -> dict[str, Recommender]:
    for name, component in components.items():
        with progress.step(f"fit.{name}", users=data.n_users, items=data.n_items):
            component.fit(data)
    return components
