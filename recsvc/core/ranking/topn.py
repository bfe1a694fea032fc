"""Top-n selection per row, compiled: the step every ranking ends with.

Exact, and the same order everywhere: best first, equal scores by item number, never a
non-finite score (-inf marks what may not be listed). A sample of the row gives a
threshold that about 1.5 n items reach; only those are sorted (by a radix sort on their
bits), so a 2,000-item row costs a pass and a sort of some 150 keys, where numpy's
argpartition + argsort + gathers made about ten passes over the whole batch."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _sample_threshold(total: np.ndarray, n: int) -> float:
    """A score that about 1.5 n finite items reach, from a sample of the row (every
    stride-th item): the want-th best sampled score, kept in a small sorted array."""
    width = total.size
    # At most ~256 samples, and never so dense that the kept array grows past ~27
    # (its insertions cost want x samples: a 500-item row with stride 1 kept 152).
    stride = max(1, width // 256, (3 * n) // 48)
    want = int(1.5 * n / stride) + 2
    best = np.empty(want, dtype=np.float32)  # descending
    kept = 0
    for i in range(0, width, stride):
        v = total[i]
        if not np.isfinite(v) or (kept == want and v <= best[want - 1]):
            continue
        at = kept if kept < want else want - 1
        while at > 0 and best[at - 1] < v:
            best[at] = best[at - 1]
            at -= 1
        best[at] = v
        kept = min(kept + 1, want)
    return best[want - 1] if kept == want else -np.inf


@numba.njit(cache=True, nogil=True)
def _radix_sort(keys: np.ndarray, index: np.ndarray, count: int, spare_keys: np.ndarray,
                spare_index: np.ndarray) -> None:
    """Stable sort of keys[:count] (uint32), index[:count] along: four byte passes."""
    histogram = np.empty(257, dtype=np.int64)
    for shift in range(0, 32, 8):
        histogram[:] = 0
        for c in range(count):
            histogram[((keys[c] >> shift) & 255) + 1] += 1
        for d in range(1, 257):
            histogram[d] += histogram[d - 1]
        for c in range(count):
            digit = (keys[c] >> shift) & 255
            at = histogram[digit]
            histogram[digit] = at + 1
            spare_keys[at] = keys[c]
            spare_index[at] = index[c]
        keys, spare_keys = spare_keys, keys
        index, spare_index = spare_index, index
    # Four passes: the sorted run is back in the caller's `keys` and `index`.


@numba.njit(cache=True, nogil=True)
def select_into(total: np.ndarray, n: int, keys: np.ndarray, index: np.ndarray,
            spare_keys: np.ndarray, spare_index: np.ndarray, tied: np.ndarray) -> int:
    """The n best finite items of `total`, best first (ties: lower item number first),
    into index[:count]; returns the count. Exact: every item above a threshold is
    sorted, then the lowest-numbered items at it follow; the threshold is lowered to
    "all" if fewer than n reach it."""
    width = total.size
    bits = total.view(np.uint32)
    threshold = _sample_threshold(total, n)
    above = at = 0
    for _ in range(2):
        above = at = 0
        for i in range(width):
            v = total[i]
            if v > threshold and v < np.inf:
                b = bits[i] if v != 0 else np.uint32(0)  # -0.0 ties with 0.0
                # Ascending keys for descending scores (IEEE order, flipped).
                keys[above] = b if b & np.uint32(0x80000000) else ~b & np.uint32(0x7FFFFFFF)
                index[above] = i  # in item order: the stable sort keeps ties so
                above += 1
            elif v == threshold and at < n and v > -np.inf:
                tied[at] = i
                at += 1
        if above + at >= n or threshold == -np.inf:
            break
        threshold = -np.inf
    _radix_sort(keys, index, above, spare_keys, spare_index)
    count = min(above + at, n)
    for j in range(above, count):
        index[j] = tied[j - above]
    return count


@numba.njit(cache=True, nogil=True)
def _top_rows(scores: np.ndarray, n: int, items: np.ndarray, top: np.ndarray,
              lengths: np.ndarray) -> None:
    width = scores.shape[1]
    keys = np.empty(width, dtype=np.uint32)
    index = np.empty(width, dtype=np.int64)
    spare_keys = np.empty(width, dtype=np.uint32)
    spare_index = np.empty(width, dtype=np.int64)
    tied = np.empty(n + 1, dtype=np.int64)
    for r in range(scores.shape[0]):
        row = scores[r]
        k = select_into(row, n, keys, index, spare_keys, spare_index, tied)
        lengths[r] = k
        for j in range(k):
            items[r, j] = index[j]
            top[r, j] = row[index[j]]


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `scores`, the n best items as (items, scores, lengths): rows x n
    arrays, -1 and 0 past each row's length (fewer finite scores than n)."""
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    rows = scores.shape[0]
    n = max(0, min(int(n), scores.shape[1]))
    items = np.full((rows, n), -1, dtype=np.int64)
    top = np.zeros((rows, n), dtype=np.float32)
    lengths = np.zeros(rows, dtype=np.int64)
    if n and rows:
        _top_rows(scores, n, items, top, lengths)
    return items, top, lengths


def warm_up() -> None:
    """Compile (or load from numba's cache) before the first ranking needs it."""
    top_n(np.zeros((1, 2), dtype=np.float32), 1)
