"""Recommendation algorithms, one per module, each following `base.Recommender`.

The registry is the one place that lists them: the trainer builds, tunes and blends
whatever is registered, the manifest names them, the service loads them back by name.
A new algorithm is its module plus one line here."""

from __future__ import annotations

from recsvc.core.algorithms.base import Recommender, TrainingData, UserBatch
from recsvc.core.algorithms.content import ContentModel
from recsvc.core.algorithms.ease import EASE
from recsvc.core.algorithms.factors import MatrixFactorization
from recsvc.core.algorithms.history import PurchaseHistory
from recsvc.core.algorithms.item_knn import ItemKNN
from recsvc.core.algorithms.popularity import Popularity
from recsvc.core.algorithms.transitions import Transitions
from recsvc.core.algorithms.trending import Trending

# The order the trainer builds them in, and the tuner's coordinate ascent visits them.
REGISTRY: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (MatrixFactorization, ItemKNN, Popularity, Trending, PurchaseHistory, EASE,
                ContentModel, Transitions)
}


def algorithm(name: str) -> type[Recommender]:
    """The registered algorithm called `name`; a ValueError naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r} (known: "
                         f"{', '.join(REGISTRY)})") from None


__all__ = [
    "EASE",
    "REGISTRY",
    "ContentModel",
    "ItemKNN",
    "MatrixFactorization",
    "Popularity",
    "PurchaseHistory",
    "Recommender",
    "TrainingData",
    "Transitions",
    "Trending",
    "UserBatch",
    "algorithm",
]
