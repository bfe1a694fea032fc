"""The forms an algorithm's scores take (`Recommender.score_compact`), so that blending
builds each shopper's row where it is cheapest instead of a users x catalog array."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import scipy.sparse as sp


class Form(StrEnum):
    DENSE = "dense"  # users x items array
    SHARED_ROWS = "shared_rows"  # `SharedRows`
    ROW_SUMS = "row_sums"  # `RowSums`
    SPARSE = "sparse"  # users x items CSR, zero where nothing is stored


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


def as_dense(scores: Scores) -> np.ndarray:
    """Any form as a dense float32 users x items array."""
    if isinstance(scores, SharedRows | RowSums):
        return scores.dense()
    if sp.issparse(scores):
        return np.asarray(scores.toarray(), dtype=np.float32)
    return np.asarray(scores, dtype=np.float32)
