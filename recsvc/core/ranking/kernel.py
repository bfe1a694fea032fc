"""Blend, exclude, select the top n and gather each algorithm's part at the picks, in
one compiled pass per shopper.

This is what `recsvc.core.ranking.scoring.recommend` runs for the service, `warm-cache` and the
evaluator. Each shopper's row of every algorithm is built in a small buffer that stays
in cache (for EASE, say, the sum of a dozen rows of its items x items weights), its mean
and spread taken there, and its z-scores added to the shopper's total; then the n best
are picked from that total. Done with numpy over a whole batch, the same steps made
some twenty passes over users x catalog arrays far larger than the cache, which was
most of the cost of a list (docs/service.md, "Fast where it matters").

Every source comes as `RowSums` (`recsvc.core.algorithms.forms`): user j's scores are
Σ_k weights[j, k] * matrix[k], with the matrix dense or CSR. A dense users x items
array, shared popularity rows and a sparse users x items array are all that form with
trivial weights, so one loop serves them all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms.forms import RowSums, Scores, SharedRows
from recsvc.core.ranking.topn import select_into

# Sums may be reordered (vectorized); no assumption about infinities or NaN is made.
_FAST = {"reassoc", "contract"}


_WHOLE = -1  # a row's values are in the whole buffer (see _source_row)
_WHOLE_CLEAR = -2  # the same, and the buffer must be zeroed after the row


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _source_row(u: int, w_indptr: np.ndarray, w_indices: np.ndarray, w_data: np.ndarray,
                m_indptr: np.ndarray, m_indices: np.ndarray, m_data: np.ndarray,
                dense: np.ndarray, is_dense: bool, buf: np.ndarray, touched: np.ndarray,
                mark: np.ndarray, stamp: int) -> int:
    """User u's scores into `buf`, which is all zeros on entry where the source is CSR.
    Returns how they were written: _WHOLE (every item), _WHOLE_CLEAR (every item, zero
    it after use) or, for a CSR source whose rows touch a small part of the catalog, the
    count of items written, listed once each in touched[:count]."""
    width = buf.size
    start, end = w_indptr[u], w_indptr[u + 1]
    if is_dense:
        for i in range(width):
            buf[i] = 0.0
        for p in range(start, end):
            row = dense[w_indices[p]]
            w = np.float32(w_data[p])
            for i in range(width):
                buf[i] += w * row[i]
        return _WHOLE
    stored = 0
    for p in range(start, end):
        stored += m_indptr[w_indices[p] + 1] - m_indptr[w_indices[p]]
    if 4 * stored > width:  # most of a small catalog: no bookkeeping per item
        for p in range(start, end):
            k = w_indices[p]
            w = np.float32(w_data[p])
            for q in range(m_indptr[k], m_indptr[k + 1]):
                buf[m_indices[q]] += w * m_data[q]
        return _WHOLE_CLEAR
    count = 0
    for p in range(start, end):
        k = w_indices[p]
        w = np.float32(w_data[p])
        for q in range(m_indptr[k], m_indptr[k + 1]):
            item = m_indices[q]
            if mark[item] != stamp:
                mark[item] = stamp
                touched[count] = item
                count += 1
            buf[item] += w * m_data[q]
    return count


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _standardize_into(values: np.ndarray, count: int, touched: np.ndarray, weight: float,
                      total: np.ndarray, stat_width: int, given: np.ndarray
                      ) -> tuple[float, float]:
    """(scale, shift) with weight * z-score = values * scale - shift, over the whole
    catalog (zeros included; float64 sums), and total += values * scale. With count >= 0
    only touched[:count] hold values (zeros elsewhere). A row with no spread (no signal
    for that user) gets scale 0 and shift 0, and so does a row with a NaN or an infinity:
    one broken source must not blank the user's whole list (the tuner would then judge
    every blend by it).

    On the candidate path (`candidates`) the row holds the candidates alone: the catalog
    is `stat_width` items, and a dense row's sums over it are `given` (estimated from a
    sample of the catalog); a CSR row's stored values are all among the candidates."""
    width = total.size
    # Sums of (value - first value): exact for a row far from zero with a small spread,
    # where E[x²] - E[x]² would cancel to noise. CSR rows are mostly zeros: no offset.
    offset = np.float64(values[0]) if count < 0 and np.isnan(given[0]) else 0.0
    s1 = 0.0
    s2 = 0.0
    if not np.isnan(given[0]):
        s1 = given[0]
        s2 = given[1]
        width = stat_width
    elif count < 0:
        for i in range(width):
            x = np.float64(values[i]) - offset
            s1 += x
            s2 += x * x
    else:
        width = stat_width
        for c in range(count):
            x = np.float64(values[touched[c]])
            s1 += x
            s2 += x * x
    if not (np.isfinite(s1) and np.isfinite(s2)):
        return 0.0, 0.0
    mean = s1 / width
    std = np.sqrt(max(s2 / width - mean * mean, 0.0))
    mean += offset
    if std <= 1e-12 * max(1.0, abs(mean)):
        return 0.0, 0.0
    scale = weight / std
    f = np.float32(scale)
    if count < 0:
        for i in range(total.size):
            total[i] += f * values[i]
    else:
        for c in range(count):
            i = touched[c]
            total[i] += f * values[i]
    return scale, scale * mean


@numba.njit(cache=True, nogil=True)
def _parts_at(values: np.ndarray, index: np.ndarray, k: int, scale: float, shift: float,
              out: np.ndarray) -> None:
    """A source's weighted z-score (values * scale - shift) at the k picks."""
    for j in range(k):
        out[j] = np.float32(scale * values[index[j]] - shift)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _blend_rank(w_indptr, w_indices, w_data, dense, m_indptr, m_indices, m_data,  # noqa: ANN001
                is_dense: np.ndarray, weights: np.ndarray, per_item: np.ndarray,
                ex_indptr: np.ndarray, ex_indices: np.ndarray, n: int,
                items: np.ndarray, scores: np.ndarray, parts: np.ndarray,
                lengths: np.ndarray, scales: np.ndarray, shifts: np.ndarray,
                bufs: np.ndarray, touched: np.ndarray, mark: np.ndarray,
                stamp: int, stat_width: int, given: np.ndarray) -> None:
    """`bufs` (all zeros), `touched` and `mark` (no entry above `stamp`) are scratch
    kept between calls (`_Scratch`); `bufs` is left all zeros again."""
    sources = weights.size
    rows = lengths.size
    width = per_item.size
    counts = np.zeros(max(sources, 1), dtype=np.int64)
    total = np.empty(width, dtype=np.float32)
    keys = np.empty(width, dtype=np.uint32)
    index = np.empty(width, dtype=np.int64)
    spare_keys = np.empty(width, dtype=np.uint32)
    spare_index = np.empty(width, dtype=np.int64)
    tied = np.empty(n + 1, dtype=np.int64)
    direct = np.full(max(sources, 1), -1, dtype=np.int64)
    for u in range(rows):
        total[:] = per_item
        shift_sum = 0.0
        for s in range(sources):
            if weights[s] == 0.0:  # a placeholder
                continue
            start = w_indptr[s][u]
            if is_dense[s] and w_indptr[s][u + 1] - start == 1 and w_data[s][start] == 1:
                # One row as it is (a plane, shared popularity): read in place.
                direct[s] = w_indices[s][start]
                counts[s] = _WHOLE
                scale, shift = _standardize_into(dense[s][direct[s]], _WHOLE, touched[s],
                                                 weights[s], total, stat_width, given[u, s])
            else:
                direct[s] = -1
                counts[s] = _source_row(u, w_indptr[s], w_indices[s], w_data[s],
                                        m_indptr[s], m_indices[s], m_data[s], dense[s],
                                        is_dense[s], bufs[s], touched[s], mark,
                                        stamp + u * sources + s)
                scale, shift = _standardize_into(bufs[s], max(counts[s], _WHOLE),
                                                 touched[s], weights[s], total, stat_width,
                                                 given[u, s])
            scales[u, s] = scale
            shifts[u, s] = shift
            shift_sum += shift
        for p in range(ex_indptr[u], ex_indptr[u + 1]):
            total[ex_indices[p]] = -np.inf
        k = select_into(total, n, keys, index, spare_keys, spare_index, tied)
        lengths[u] = k
        for j in range(k):
            item = index[j]
            items[u, j] = item
            scores[u, j] = np.float32(total[item] - shift_sum)
        for s in range(sources):  # source by source: one row to read from for the picks
            if weights[s] == 0.0:
                continue
            if direct[s] >= 0:
                _parts_at(dense[s][direct[s]], index, k, scales[u, s], shifts[u, s],
                          parts[s, u])
            else:
                _parts_at(bufs[s], index, k, scales[u, s], shifts[u, s], parts[s, u])
        # CSR sources' buffers back to zeros (they are read as zero where a row stored
        # nothing).
        for s in range(sources):
            if counts[s] == _WHOLE_CLEAR:
                bufs[s, :] = 0.0
            elif counts[s] > 0:
                for c in range(counts[s]):
                    bufs[s, touched[s, c]] = 0.0


@dataclass(frozen=True)
class Blended:
    """The top n per row (-1 / 0 padded), each source's weighted z-score at each pick
    (name -> rows x n) and each source's per-row (scale, shift)."""

    items: np.ndarray
    scores: np.ndarray
    lengths: np.ndarray
    contributions: dict[str, np.ndarray]
    standardization: dict[str, tuple[np.ndarray, np.ndarray]]


_EMPTY_2D = np.zeros((0, 0), dtype=np.float32)
_EMPTY_I32 = np.zeros(0, dtype=np.int32)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_F32 = np.zeros(0, dtype=np.float32)
SOURCE_SLOTS = 8  # more than a model has algorithms


def read_only(array: np.ndarray, dtype: type) -> np.ndarray:
    """A read-only C-contiguous view (a copy only if the type or layout differ): stored
    model arrays are read-only (memory-mapped), so every array handed to a kernel is
    made so, for one compiled type (numba compiles read-only and writable apart)."""
    out = np.ascontiguousarray(array, dtype=dtype).view()
    out.flags.writeable = False
    return out


_PLACEHOLDER = tuple(read_only(array, array.dtype.type) for array in (
    _EMPTY_I64, _EMPTY_I64, _EMPTY_F32, _EMPTY_2D, _EMPTY_I64, _EMPTY_I32, _EMPTY_F32))



class _Scratch(threading.local):
    """Per thread, the kernel's catalog-wide buffers, kept from call to call: allocated
    afresh, their pages were cleared by the kernel on every request (about 2 ms at
    100,000 items, more than the blending itself). `mark` holds stamps that only grow,
    so it never needs resetting."""

    def __init__(self) -> None:
        self.shape: tuple[int, int] = (0, 0)
        self.stamp = 0

    def take(self, sources: int, width: int, rows: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        if self.shape != (sources, width):
            self.bufs = np.zeros((sources, width), dtype=np.float32)
            self.touched = np.empty((sources, width), dtype=np.int32)  # item numbers
            self.mark = np.full(width, -1, dtype=np.int64)
            self.shape, self.stamp = (sources, width), 0
        stamp = self.stamp
        self.stamp += rows * sources
        return self.bufs, self.touched, self.mark, stamp


_SCRATCH = _Scratch()


def _csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    return matrix if matrix.format == "csr" else sp.csr_matrix(matrix)


def _slot(scores: Scores) -> tuple[np.ndarray, ...]:
    """Any compact form as the kernel's arrays for weights @ matrix: the weights' CSR
    (indptr, indices, data), then the matrix dense (else empty), then its CSR (else
    empty). A dense users x items array, shared rows and a sparse users x items array
    are that form with one weight of 1 per row."""
    if isinstance(scores, RowSums):
        weights = _csr(scores.weights)
        w_indptr, w_indices, w_data = weights.indptr, weights.indices, weights.data
        matrix = scores.matrix
    else:
        rows = scores.shape[0]
        w_indptr = np.arange(rows + 1, dtype=np.int64)
        w_data = np.ones(rows, dtype=np.float32)
        if isinstance(scores, SharedRows):
            w_indices, matrix = scores.which, scores.rows
        else:
            w_indices, matrix = np.arange(rows, dtype=np.int64), scores
    if sp.issparse(matrix):
        m = _csr(matrix)
        dense, m_indptr, m_indices, m_data = _EMPTY_2D, m.indptr, m.indices, m.data
    else:
        dense, m_indptr, m_indices, m_data = matrix, _EMPTY_I64, _EMPTY_I32, _EMPTY_F32
    return tuple(read_only(array, dtype) for array, dtype in (
        (w_indptr, np.int64), (w_indices, np.int64), (w_data, np.float32),
        (dense, np.float32), (m_indptr, np.int64), (m_indices, np.int32),
        (m_data, np.float32)))


def blend_rank(sources: Mapping[str, Scores], weights: Mapping[str, float], n: int,
               per_item: np.ndarray, exclude: sp.csr_matrix | None,
               stat_width: int | None = None,
               given: Mapping[str, np.ndarray] | None = None) -> Blended:
    """Weighted sum of the sources' per-row z-scores (sources with weight 0 skipped),
    plus `per_item` (rules' boosts; -inf: never listed), minus `exclude`'s items per row;
    the n best per row, best first, ties to the lower item number (column number).

    The candidate path passes its candidates' columns only: `stat_width` is then the
    catalog's size, and `given` each dense source's rows x (sum, sum of squares) over
    the catalog (`candidates.CandidatePath`)."""
    names = [name for name, w in weights.items() if w != 0 and name in sources]
    if not sources:
        raise ValueError("nothing to blend: no algorithm has a weight")
    per_item = np.asarray(per_item, dtype=np.float32)
    width = per_item.size
    rows = next(iter(sources.values())).shape[0] if sources else 0
    n = max(0, min(int(n), width))
    slots: list[list[np.ndarray]] = [[] for _ in range(7)]
    for name in names:
        for slot, array in zip(slots, _slot(sources[name]), strict=True):
            slot.append(array)
    # Padded with weightless placeholders to a multiple of SOURCE_SLOTS: the compiled
    # kernel is specialized on the number of sources, so every model and variant (and
    # cold start's two sources) shares one compilation.
    while not slots[0] or len(slots[0]) % SOURCE_SLOTS:
        for slot, placeholder in zip(slots, _PLACEHOLDER, strict=True):
            slot.append(placeholder)
    is_dense = np.array([slot.size > 0 for slot in slots[3]], dtype=np.bool_)
    source_weights = np.zeros(len(slots[0]), dtype=np.float64)
    source_weights[:len(names)] = [weights[name] for name in names]
    if exclude is None:
        ex_indptr, ex_indices = np.zeros(rows + 1, dtype=np.int64), _EMPTY_I64
    else:
        exclude = sp.csr_matrix(exclude)
        ex_indptr = exclude.indptr.astype(np.int64)
        ex_indices = exclude.indices.astype(np.int64)
    items = np.full((rows, n), -1, dtype=np.int64)
    scores = np.zeros((rows, n), dtype=np.float32)
    parts = np.zeros((source_weights.size, rows, n), dtype=np.float32)
    lengths = np.zeros(rows, dtype=np.int64)
    scales = np.zeros((rows, source_weights.size), dtype=np.float64)
    shifts = np.zeros((rows, source_weights.size), dtype=np.float64)
    moments = np.full((rows, source_weights.size, 2), np.nan, dtype=np.float64)
    for s, name in enumerate(names):
        if given is not None and name in given:
            moments[:, s] = given[name]
    if rows and width:
        bufs, touched, mark, stamp = _SCRATCH.take(source_weights.size, width, rows)
        _blend_rank(*(tuple(slot) for slot in slots), is_dense, source_weights,
                    read_only(per_item, np.float32), ex_indptr, ex_indices, n, items, scores,
                    parts, lengths, scales, shifts, bufs, touched, mark, stamp,
                    width if stat_width is None else int(stat_width), moments)
    return Blended(items, scores, lengths,
                   {name: parts[s] for s, name in enumerate(names)},
                   {name: (scales[:, s], shifts[:, s]) for s, name in enumerate(names)})


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernel before the first shopper needs
    it: the service and `warm-cache` call this when they load a model."""
    history = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32))
    blend_rank({"a": RowSums(history, np.eye(2, dtype=np.float32)),
                "b": RowSums(history, sp.csr_matrix(np.eye(2, dtype=np.float32)))},
               {"a": 1.0, "b": 1.0}, 1, np.zeros(2, dtype=np.float32), history)
