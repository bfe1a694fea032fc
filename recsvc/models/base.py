"""The interface every algorithm follows (after implicit's RecommenderBase).

`fit` runs in the trainer; `score`, `similar`, `save` and `load` also run in the service,
so they use numpy/scipy only and never import the training package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.artifacts import StoredVersion

SECONDS_PER_DAY = 86_400.0


class ArraySink(Protocol):
    def save_array(self, name: str, array: np.ndarray) -> None: ...


@dataclass
class TrainingData:
    """Everything a model may learn from, indexed by dense user and item numbers."""

    user_items: sp.csr_matrix  # users x items, decayed confidence (>= 0)
    event_users: np.ndarray  # one entry per kept event
    event_items: np.ndarray
    event_weights: np.ndarray  # event weight before time decay
    event_times: np.ndarray  # epoch seconds
    reference_time: int  # the end of the training period
    items: pd.DataFrame | None = None  # catalog rows aligned with item numbers
    user_attributes: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.user_items.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.user_items.shape[1])


@dataclass
class UserBatch:
    """Users to score. `users[j] >= 0` names a trained user whose stored state may be used;
    -1 means score from `history` alone (an anonymous session, or a user with new events)."""

    users: np.ndarray
    history: sp.csr_matrix  # len(users) x items confidence, as in TrainingData.user_items
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # attribute -> codes, -1

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class SharedRows:
    """Scores that many users share: user j's row is `rows[which[j]]` (popularity: one
    row per combination of attributes; trending: one row for all): computed once, read
    in place for each user when blending."""

    rows: np.ndarray  # R x items
    which: np.ndarray  # one row number per user

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.which.size), int(self.rows.shape[1]))

    def dense(self) -> np.ndarray:
        return np.asarray(self.rows, dtype=np.float32)[self.which]


@dataclass(frozen=True)
class RowSums:
    """Scores that are a weighted sum of a few rows of a matrix: user j's row is
    Σ_k weights[j, k] * matrix[k] (EASE: the shopper's items' rows of its weights;
    item-kNN: of its neighbour lists). Blending builds each user's row when it needs it,
    in cache, instead of a users x items product written out and read back."""

    weights: sp.csr_matrix  # users x rows of `matrix`
    matrix: np.ndarray | sp.csr_matrix  # rows x items, dense or CSR

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weights.shape[0]), int(self.matrix.shape[1]))

    def dense(self) -> np.ndarray:
        product = sp.csr_matrix(self.weights, dtype=np.float32) @ self.matrix
        return np.asarray(product.toarray() if sp.issparse(product) else product,
                          dtype=np.float32)


# What `Recommender.score_compact` gives: dense users x items, shared rows, row sums, or
# sparse (zero wherever nothing is stored).
Scores = np.ndarray | SharedRows | RowSums | sp.csr_matrix


def save_csr(out: ArraySink, name: str, matrix: sp.csr_matrix) -> None:
    matrix = sp.csr_matrix(matrix)
    out.save_array(f"{name}.data", matrix.data)
    out.save_array(f"{name}.indices", matrix.indices)
    out.save_array(f"{name}.indptr", matrix.indptr)
    out.save_array(f"{name}.shape", np.asarray(matrix.shape, dtype=np.int64))


def load_csr(stored: StoredVersion, name: str) -> sp.csr_matrix:
    shape = tuple(int(x) for x in stored.array(f"{name}.shape", mmap=False))
    return sp.csr_matrix(
        (stored.array(f"{name}.data"), stored.array(f"{name}.indices"),
         stored.array(f"{name}.indptr")),
        shape=shape,
    )


class Recommender(ABC):
    """One algorithm. Scores are per item; higher is better. Scales differ between
    algorithms: `recsvc.blend` normalizes them before mixing."""

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, data: TrainingData) -> Self: ...

    @abstractmethod
    def score(self, batch: UserBatch) -> np.ndarray:
        """Dense float32 scores, len(batch) x n_items."""

    def score_compact(self, batch: UserBatch) -> Scores:
        """The same scores as `score`, in the most compact form the algorithm has them
        (`Scores`), so that blending passes over the whole catalog only where it must."""
        return self.score(batch)

    def similar(self, items: np.ndarray) -> np.ndarray | None:
        """Dense float32 item-to-item scores, len(items) x n_items; None if the algorithm
        has no notion of item similarity."""
        return None

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor arguments, written to the manifest."""

    @abstractmethod
    def save(self, out: ArraySink, prefix: str) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, stored: StoredVersion, prefix: str, params: dict[str, Any]) -> Self: ...
