"""Fit stage: build each enabled algorithm from the config and fit it on the weighted
data. What is registered (`recsvc.core.algorithms.REGISTRY`) is what is built."""

from __future__ import annotations

from typing import Any

from recsvc.core.algorithms import Recommender, TrainingData, algorithm
from training.config import ModelConfig
from training.progress import Progress


def build(config: ModelConfig, name: str, **overrides: Any) -> Recommender:
    """One unfitted algorithm with its configured settings (and `overrides`)."""
    cls = algorithm(name)
    params = cls.parse_params({**config.params(name), **overrides}, f"model.{name}")
    return cls(**params.model_dump())


def unusable(config: ModelConfig, data: TrainingData) -> dict[str, str]:
    """Enabled algorithms the data cannot take, each with why (`Recommender.usable`)."""
    out = {}
    for name in config.enabled():
        cls = algorithm(name)
        reason = cls.usable(cls.parse_params(config.params(name), f"model.{name}"), data)
        if reason is not None:
            out[name] = reason
    return out


def build_components(config: ModelConfig, data: TrainingData,
                     names: list[str] | None = None) -> dict[str, Recommender]:
    """Unfitted algorithms by name: the enabled ones (or `names` of them) that the data
    can take."""
    skipped = unusable(config, data)
    return {name: build(config, name) for name in config.enabled()
            if name not in skipped and (names is None or name in names)}


def fit_components(
    components: dict[str, Recommender], data: TrainingData, progress: Progress
) -> dict[str, Recommender]:
    for name, component in components.items():
        with progress.step(f"fit.{name}", users=data.n_users, items=data.n_items):
            component.fit(data)
    return components
