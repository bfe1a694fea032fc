"""The items a pick may be explained by ("because you bought X"): for each list, the
shopper's session items first, then their past items with the most confidence."""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

MAX_ANCHORS = 20  # past items (most confidence first) considered when explaining a pick


@numba.njit(cache=True, nogil=True)
def _past_anchors(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                  session_ptr: np.ndarray, session_items: np.ndarray, limit: int,
                  anchors: np.ndarray, from_session: np.ndarray) -> None:
    """Into row b of `anchors` (all -1): its session items, then its `limit` past items
    with the most confidence (ties: item order), less those already in the session."""
    order = np.empty(max(1, np.max(np.diff(indptr)) if indptr.size > 1 else 1),
                     dtype=np.int64)
    for b in range(indptr.size - 1):
        at = 0
        for p in range(session_ptr[b], session_ptr[b + 1]):
            anchors[b, at] = session_items[p]
            from_session[b, at] = True
            at += 1
        lo, hi = indptr[b], indptr[b + 1]
        count = 0
        for p in range(lo, hi):  # insertion by (-confidence, item)
            j = count
            while j > 0 and (data[order[j - 1]] < data[p] or (
                    data[order[j - 1]] == data[p] and indices[order[j - 1]] > indices[p])):
                order[j] = order[j - 1]
                j -= 1
            order[j] = p
            count += 1
        for j in range(min(count, limit)):
            item = indices[order[j]]
            in_session = False
            for p in range(session_ptr[b], session_ptr[b + 1]):
                in_session |= session_items[p] == item
            if not in_session:
                anchors[b, at] = item
                at += 1


def anchor_candidates(histories: sp.csr_matrix, sessions: list[np.ndarray],
             personal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's candidate anchors, padded with -1: session items first, then the past
    items with the most confidence (at most MAX_ANCHORS of them, less those in the
    session), for the whole batch at once."""
    histories = sp.csr_matrix(histories)
    rows = histories.shape[0]
    lengths = [np.asarray(sessions[b]).size if b < len(sessions) else 0 for b in range(rows)]
    session_ptr = np.zeros(rows + 1, dtype=np.int64)
    session_ptr[1:] = np.cumsum(lengths)
    session_items = (np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions[:rows]])
                     if any(lengths) else np.zeros(0, dtype=np.int64))
    indptr = histories.indptr.astype(np.int64)
    if not personal:
        indptr = np.zeros(rows + 1, dtype=np.int64)
    past = np.minimum(np.diff(indptr), MAX_ANCHORS)
    width = int((session_ptr[1:] - session_ptr[:-1] + past).max()) if rows else 0
    anchors = np.full((rows, width), -1, dtype=np.int64)
    from_session = np.zeros((rows, width), dtype=bool)
    if rows and width:
        _past_anchors(indptr, histories.indices.astype(np.int64),
                      histories.data.astype(np.float64), session_ptr, session_items,
                      MAX_ANCHORS, anchors, from_session)
    # Session items dropped from the past leave room at the end: trim unused columns.
    used = int((anchors >= 0).sum(axis=1).max()) if rows and width else 0
    return anchors[:, :used], from_session[:, :used]


def warm_up() -> None:
    """Compile (or load from numba's cache) before the first list needs anchors."""
    anchor_candidates(sp.csr_matrix(np.ones((1, 1), dtype=np.float32)),
                      [np.zeros(1, np.int64)], True)
