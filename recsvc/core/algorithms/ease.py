"""EASE (Steck, 2019): a closed-form linear item-item model.

The item-item weights B minimize ||X - XB||² + λ||B||² with diag(B) = 0, which has the
exact solution B = -P / diag(P) for P = (XᵀX + λI)⁻¹, a dense items × items matrix: up
to `max_items` items it is fitted so.

Above, each item's column is fitted on its `neighbours` most co-occurring items alone:
b_j = (G_NN + λI)⁻¹ G_Nj with G = XᵀX and N the neighbours of j (never j itself), the
same ridge regression restricted to the items that can matter (a sparse approximation,
after SANSA and neighbourhood-restricted SLIM). Its weights are a sparse items × items
matrix of `neighbours` entries a column: a 100,000-item catalog fits in minutes.

A user's scores are their history row times B, so anonymous sessions and users with new
events are scored the same way as trained users.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

import numba
import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    ItemRelation,
    Reason,
    Recommender,
    Relation,
    TrainingData,
    UserBatch,
    expect_csr,
    expect_finite,
    expect_shape,
    padded,
)
from recsvc.core.algorithms.forms import Form, RowSums

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


def interaction_gram(user_items: sp.csr_matrix, dense: bool = True
                     ) -> np.ndarray | sp.csr_matrix:
    """XᵀX for the binary matrix X (who touched what), items × items: dense float64, or
    sparse float32 (CSR, sorted; counts are exact in float32 below 16M users) for a
    large catalog, where it is the largest array of the fit."""
    kind = np.float64 if dense else np.float32
    binary = sp.csr_matrix(user_items, dtype=kind, copy=True)
    binary.data = (binary.data > 0).astype(kind)
    binary.eliminate_zeros()
    gram = binary.T @ binary
    if dense:
        return np.asarray(gram.todense(), dtype=np.float64)
    gram = sp.csr_matrix(gram)
    gram.sort_indices()
    return gram


@numba.njit(cache=True, nogil=True)
def _neighbourhoods(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's k most co-occurring other items (sorted by number), from the rows of
    the symmetric XᵀX: (offsets, items) as CSR arrays."""
    n = indptr.size - 1
    offsets = np.zeros(n + 1, dtype=np.int64)
    for j in range(n):
        offsets[j + 1] = offsets[j] + min(k, indptr[j + 1] - indptr[j])
    picked = np.empty(offsets[n], dtype=np.int64)
    used = 0
    for j in range(n):
        idx = indices[indptr[j]:indptr[j + 1]]
        val = data[indptr[j]:indptr[j + 1]]
        order = np.argsort(-val, kind="mergesort")  # ties: the lower item number
        top = np.empty(min(k, idx.size), dtype=np.int64)
        t = 0
        for o in order:
            if t == top.size:
                break
            if idx[o] != j:
                top[t] = idx[o]
                t += 1
        top = np.sort(top[:t])
        picked[used:used + t] = top
        used += t
        offsets[j + 1] = used
    return offsets, picked[:used]


@numba.njit(cache=True, nogil=True, parallel=True)
def _systems(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
             offsets: np.ndarray, picked: np.ndarray, lo: int, hi: int, lam: float,
             width: int) -> tuple[np.ndarray, np.ndarray]:
    """For items lo..hi: A = G_NN + λI and b = G_Nj over each one's neighbourhood N,
    padded to one width (identity rows, zero right side) so they solve as one batch.

    Each neighbour's row of G is scanned once against a marker of N's members (where
    each sits in N): sequential reads, where a binary search per pair of neighbours
    waits on memory at every step; only a popular item's long row is searched."""
    n = indptr.size - 1
    a = np.zeros((hi - lo, width, width))
    b = np.zeros((hi - lo, width))
    for at in numba.prange(hi - lo):
        j = lo + at
        nbr = picked[offsets[j]:offsets[j + 1]]
        size = nbr.size
        where = np.zeros(n, dtype=np.int32)  # 1 + position in N; 0: not a neighbour
        for p in range(size):
            where[nbr[p]] = p + 1
        for e in range(indptr[j], indptr[j + 1]):  # G is symmetric: G[n_p, j] = G[j, n_p]
            q = where[indices[e]]
            if q > 0:
                b[at, q - 1] = data[e]
        for p in range(size):
            first, last = indptr[nbr[p]], indptr[nbr[p] + 1]
            if last - first <= 4 * size * np.log2(last - first + 1):
                for e in range(first, last):
                    q = where[indices[e]]
                    if q > 0:
                        a[at, p, q - 1] = data[e]
            else:  # a popular item's long row: look the few neighbours up in it
                row = indices[first:last]
                for q in range(size):
                    e = np.searchsorted(row, nbr[q])
                    if e < row.size and row[e] == nbr[q]:
                        a[at, p, q] = data[first + e]
            a[at, p, p] += lam
        for p in range(size, width):
            a[at, p, p] = 1.0
    return a, b


def sparse_ease(gram: sp.csr_matrix, lam: float, neighbours: int,
                chunk: int = 256) -> sp.csr_matrix:
    """B with B[:, j] = (G_NN + λI)⁻¹ G_Nj over j's `neighbours` most co-occurring items N
    (not j), as float32 CSR (rows: the items that speak, columns: the items spoken for)."""
    n = gram.shape[0]
    g = sp.csr_matrix(gram, dtype=np.float32)
    g.sort_indices()
    indptr, indices = g.indptr.astype(np.int64), g.indices  # int32: half the bytes read
    offsets, picked = _neighbourhoods(indptr, indices, g.data, neighbours)
    values = np.zeros(picked.size, dtype=np.float64)
    sizes = np.diff(offsets)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        width = int(sizes[lo:hi].max(initial=0))
        if width == 0:
            continue
        a, b = _systems(indptr, indices, g.data, offsets, picked, lo, hi, lam, width)
        with threadpool_limits(limits=None, user_api="blas"):
            solved = np.linalg.solve(a, b[..., None])[..., 0]
        mask = np.arange(width) < sizes[lo:hi, None]
        values[offsets[lo]:offsets[hi]] = solved[mask]
    columns = np.repeat(np.arange(n), sizes)
    weights = sp.csr_matrix((values, (picked, columns)), shape=(n, n), dtype=np.float32)
    weights.eliminate_zeros()
    weights.sort_indices()
    return weights


class EASEParams(AlgorithmParams):
    # Relative: λ = regularization × mean item count (the mean of diag(XᵀX)), so one
    # default fits a 400-user shop and a 400,000-user one.
    regularization: float = Field(16.0, gt=0, description="times the mean item count")
    max_items: int = Field(10_000, ge=0,
                           description="largest catalog fitted exactly (dense items²)")
    neighbours: int = Field(200, ge=1, description="above max_items: items each column uses")


class EASE(Recommender):
    name = "ease"
    Params = EASEParams
    form = Form.ROW_SUMS
    reason = Reason.ANCHORED
    relation = Relation.BOUGHT_TOGETHER
    relation_priority = 0
    start_weight = 1.0
    similar_weight = 1.0
    follows_weighting = False  # who touched what, whatever the weights and decay
    walk = "regularization"
    params: EASEParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        # Dense items x items up to max_items; above, sparse (CSR).
        self.weights: np.ndarray | sp.csr_matrix = np.zeros((0, 0), dtype=np.float32)

    @classmethod
    def usable(cls, params: AlgorithmParams, data: TrainingData) -> str | None:
        return None if data.n_items > 0 else "an empty catalog"

    def prepare(self, data: TrainingData) -> np.ndarray | sp.csr_matrix:
        return interaction_gram(data.user_items, dense=data.n_items <= self.params.max_items)

    def fit(self, data: TrainingData) -> Self:
        return self.fit_prepared(self.prepare(data))

    def fit_prepared(self, prepared: np.ndarray | sp.csr_matrix) -> Self:
        """Fit from XᵀX (`prepare`), which does not depend on λ."""
        gram = prepared
        n = gram.shape[0]
        if n == 0:
            self.weights = np.zeros((0, 0), dtype=np.float32)
            return self
        diag = gram.diagonal()
        lam = self.params.regularization * max(float(diag.mean()), 1.0)
        if sp.issparse(gram):
            self.weights = sparse_ease(sp.csr_matrix(gram), lam, self.params.neighbours)
            self.__dict__.pop("_sparse_relation", None)
            return self
        g = gram.copy()
        g[np.diag_indices(n)] += lam
        with threadpool_limits(limits=None, user_api="blas"):
            p = np.linalg.inv(g)
        b = p / (-np.diag(p))[np.newaxis, :]
        b[np.diag_indices(n)] = 0.0
        self.weights = b.astype(np.float32)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> RowSums:
        history = sp.csr_matrix(batch.history, dtype=np.float32, copy=True)
        history.data = (history.data > 0).astype(np.float32)
        return RowSums(history, self.weights)

    def similar(self, items: np.ndarray) -> np.ndarray:
        rows = self.weights[np.asarray(items)]
        return np.asarray(rows.toarray() if sp.issparse(rows) else rows, dtype=np.float32)

    @cached_property
    def _sparse_relation(self) -> ItemRelation:
        return ItemRelation.sparse(self.weights)

    def item_relation(self) -> ItemRelation:
        if sp.issparse(self.weights):
            return self._sparse_relation
        return ItemRelation(dense=np.asarray(self.weights))

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        out.weights = padded(self.weights, len(rows), axes=(0, 1))
        return out

    def check(self, n_users: int, n_items: int) -> None:
        if sp.issparse(self.weights):
            expect_csr("ease.weights_sparse", self.weights, (n_items, n_items))
            return
        expect_shape("ease.weights", self.weights, (n_items, n_items))
        expect_finite("ease.weights", self.weights)

    def save(self, out: ArraySink, prefix: str) -> None:
        if sp.issparse(self.weights):
            out.save_csr(f"{prefix}.weights_sparse", self.weights)
        else:
            out.save_array(f"{prefix}.weights", self.weights)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.weights = (stored.csr(f"{prefix}.weights_sparse")
                        if stored.has_array(f"{prefix}.weights_sparse.data")
                        else stored.array(f"{prefix}.weights"))
