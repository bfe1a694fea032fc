"""Recommendation algorithms, one per module, all following `base.Recommender`."""

from recsvc.models.base import Recommender, TrainingData, UserBatch
from recsvc.models.content import ContentModel
from recsvc.models.ease import EASE
from recsvc.models.factors import MatrixFactorization
from recsvc.models.history import PurchaseHistory
from recsvc.models.item_knn import ItemKNN
from recsvc.models.popularity import Popularity, Trending

# Name in the manifest -> class. A new algorithm registers itself here.
REGISTRY: dict[str, type[Recommender]] = {
    cls.kind: cls
    for cls in (MatrixFactorization, ItemKNN, EASE, ContentModel, Popularity, Trending,
                PurchaseHistory)
}

__all__ = [
    "REGISTRY",
    "EASE",
    "ContentModel",
    "ItemKNN",
    "MatrixFactorization",
    "Popularity",
    "PurchaseHistory",
    "Recommender",
    "TrainingData",
    "Trending",
    "UserBatch",
]
