"""Candidate generation for catalogs of a million items: blend a shopper's few thousand
likely items instead of every item.

Above `ABOVE` items, `scoring.recommend` ranks each shopper over these columns only:

- every item a sparse source touches (item-kNN's and transitions' rows, EASE's pruned
  rows, the shopper's own history): all of them, so those sources blend exactly;
- the `ann_k` best items of the factor model (`cf`), found by an approximate
  nearest-neighbour index over its item factors (faiss, inverted lists, inner product);
- each algorithm's own best (`Recommender.best_items`: popularity overall and in the
  shopper's groups), the `top_k` best of each shared row (trending) and of the rules'
  boosts;
- a fixed random sample of the catalog, which also gives each dense source's mean and
  spread over the whole catalog: the z-scores the exact path blends, without scoring
  every item (shared rows' are exact, computed once).

The same kernel blends them (`kernel.blend_rank` with the catalog's width and those
sums), so a list differs from the exact one only where an item outside the candidates
would have entered it: BENCHMARKS.md measures the top 10's recall against exact
scoring at a million items. The index is built in a background thread the first time
a model is ranked; until it is ready, lists are ranked exactly (a replica answers at
once, a little slower)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms import Recommender, UserBatch
from recsvc.core.algorithms.forms import RowSums, Scores, SharedRows, as_dense
from recsvc.core.model import RecommenderModel
from recsvc.core.ranking.kernel import Blended, blend_rank

log = logging.getLogger("recsvc.candidates")

ABOVE = 200_000  # catalogs larger than this take the candidate path (RECSVC_CANDIDATES_ABOVE)
_STATE = "_candidate_path"
_LOCK = threading.Lock()


@dataclass
class CandidatePath:
    n_items: int
    sample: np.ndarray  # sorted item numbers
    index: Any = None  # faiss index over cf's item factors (None: no cf)
    sample_factors: np.ndarray | None = None  # cf's factors of the sample, contiguous
    ann_k: int = 1000
    top_k: int = 300
    nprobe: int = 24
    _tops: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _moments: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def build(cls, model: RecommenderModel, sample: int = 8192, ann_k: int = 1000,
              top_k: int = 300, seed: int = 0) -> CandidatePath:
        n = model.n_items
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(n, size=min(sample, n), replace=False)).astype(np.int64)
        path = cls(n, chosen, ann_k=ann_k, top_k=top_k)
        factors = getattr(model.components.get("cf"), "item_factors", None)
        if factors is not None and len(factors):
            path.index = _ivf_index(np.asarray(factors, dtype=np.float32))
            path.sample_factors = np.ascontiguousarray(np.asarray(factors)[chosen],
                                                       dtype=np.float32)
        return path

    def _top(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Each row's k best items (cached per array: shared rows live with the model)."""
        owner, key = _key(rows)
        cached = self._tops.get(key)
        if cached is None or cached[0] is not owner:
            k = min(k, rows.shape[1])
            part = np.argpartition(-np.asarray(rows, np.float32), k - 1, axis=1)[:, :k]
            cached = (owner, part.astype(np.int64))
            self._tops[key] = cached
        return cached[1]

    def _boosted(self, bias: np.ndarray) -> np.ndarray:
        """The `top_k` most boosted items (cached per bias array: the rules' bias is
        made once per engine and ten minutes)."""
        key = id(bias)
        cached = self._tops.get(key)
        if cached is None or cached[0] is not bias:
            boosted = np.flatnonzero(bias > 0)
            if boosted.size > self.top_k:
                best = np.argpartition(-bias[boosted], self.top_k - 1)[:self.top_k]
                boosted = boosted[best]
            cached = (bias, boosted.astype(np.int64))
            self._tops[key] = cached
        return cached[1]

    def _row_moments(self, rows: np.ndarray) -> np.ndarray:
        """Each shared row's (sum, sum of squares) over the catalog, once per array."""
        owner, key = _key(rows)
        cached = self._moments.get(key)
        if cached is None or cached[0] is not owner:
            values = np.asarray(rows, dtype=np.float64)
            cached = (owner, np.stack([values.sum(axis=1), (values * values).sum(axis=1)], 1))
            self._moments[key] = cached
        return cached[1]

    def rank(self, components: dict[str, Any], batch: UserBatch, weights: dict[str, float],
             n: int, listable: np.ndarray, bias: np.ndarray | None,
             exclude: sp.csr_matrix | None) -> Blended:
        """`kernel.blend_rank` over the whole catalog (`listable` items, `bias` added),
        one shopper at a time over their candidates; the items are catalog numbers, as
        the exact path gives them."""
        rows = [self._rank_one(components, _row(batch, j), weights, n, listable, bias,
                               None if exclude is None else exclude[j])
                for j in range(len(batch))]
        width = max([r.items.shape[1] for r in rows] + [0])
        items = np.full((len(rows), width), -1, dtype=np.int64)
        scores = np.zeros((len(rows), width), dtype=np.float32)
        names = list(rows[0].contributions) if rows else []
        parts = {name: np.zeros((len(rows), width), dtype=np.float32) for name in names}
        for j, r in enumerate(rows):
            k = r.items.shape[1]
            items[j, :k], scores[j, :k] = r.items[0], r.scores[0]
            for name in names:
                parts[name][j, :k] = r.contributions[name][0]
        lengths = np.array([int(r.lengths[0]) for r in rows], dtype=np.int64)
        return Blended(items, scores, lengths, parts, {})

    def _rank_one(self, components: dict[str, Any], batch: UserBatch,
                  weights: dict[str, float], n: int, listable: np.ndarray,
                  bias: np.ndarray | None, exclude: sp.csr_matrix | None) -> Blended:
        active = [name for name, w in weights.items() if w != 0 and name in components]
        found = [self.sample]
        compact: dict[str, Scores] = {}
        dense: list[str] = []
        for name in active:
            component = components[name]
            best = component.best_items(batch, self.top_k)
            if best is not None:
                found.append(best)
            if type(component).score_at is not Recommender.score_at:
                dense.append(name)  # scored at the candidates below (if it says so)
                continue
            scores = component.score_compact(batch)
            if isinstance(scores, SharedRows):
                found.append(self._top(np.asarray(scores.rows), self.top_k)[scores.which]
                             .ravel())
            elif isinstance(scores, RowSums) and sp.issparse(scores.matrix):
                scores = sp.csr_matrix(scores.weights, dtype=np.float32) @ scores.matrix
                found.append(scores.indices.astype(np.int64))
            elif sp.issparse(scores):
                found.append(sp.csr_matrix(scores).indices.astype(np.int64))
            compact[name] = scores
        vector = None
        if "cf" in dense and self.index is not None:
            vector = components["cf"].user_vectors(batch).astype(np.float32)
            self.index.nprobe = self.nprobe
            _, best = self.index.search(vector, self.ann_k)
            found.append(best[best >= 0].astype(np.int64))
        if bias is not None:
            found.append(self._boosted(bias))
        every = np.concatenate(found)
        every.sort()
        columns = every[np.r_[True, every[1:] != every[:-1]]]
        in_sample = np.searchsorted(columns, self.sample)
        sources: dict[str, Scores] = {}
        given: dict[str, np.ndarray] = {}
        for name in active:
            if name == "cf" and vector is not None:  # the sample's factors lie together
                values = np.empty((1, columns.size), dtype=np.float32)
                values[:, in_sample] = vector @ self.sample_factors.T
                rest = np.ones(columns.size, dtype=bool)
                rest[in_sample] = False
                factors = np.asarray(components["cf"].item_factors)
                values[:, rest] = vector @ factors[columns[rest]].T
                sources[name], given[name] = values, self._sampled(values[:, in_sample])
                continue
            if name in dense:
                values = components[name].score_at(batch, columns)
                if values is not None:
                    sources[name], given[name] = values, self._sampled(values[:, in_sample])
                    continue
                compact[name] = components[name].score_compact(batch)  # cheap after all
            scores = compact[name]
            if isinstance(scores, SharedRows):
                rows = np.asarray(scores.rows)
                sources[name] = SharedRows(rows[:, columns], scores.which)
                given[name] = self._row_moments(rows)[scores.which]
            elif sp.issparse(scores):
                sources[name] = _columns(sp.csr_matrix(scores), columns)
            else:  # dense without score_at, or a dense matrix's row sums: whole rows
                values = as_dense(scores)
                sources[name] = values[:, columns]
                given[name] = np.stack([values.sum(1, dtype=np.float64),
                                        (values.astype(np.float64) ** 2).sum(1)], 1)
        per_item = np.where(listable[columns], np.float32(0) if bias is None
                            else bias[columns].astype(np.float32), np.float32(-np.inf))
        out = blend_rank(sources, weights, n, per_item,
                         None if exclude is None else _columns(exclude, columns),
                         stat_width=self.n_items, given=given)
        picked = out.items >= 0
        out.items[picked] = columns[out.items[picked]]
        return out

    def _sampled(self, values: np.ndarray) -> np.ndarray:
        """(sum, sum of squares) over the catalog, estimated from the sample's values."""
        scale = self.n_items / max(self.sample.size, 1)
        values = values.astype(np.float64)
        return np.stack([values.sum(1) * scale, (values * values).sum(1) * scale], 1)


def _key(rows: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """The array a view was taken of, and a key for the view: trending's row comes as
    `trend[None, :]`, a new view of one array each time, cached once."""
    owner = rows.base if isinstance(rows.base, np.ndarray) else rows
    return owner, (id(owner), rows.__array_interface__["data"][0], *rows.shape,
                   *rows.strides)


def _columns(matrix: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """The matrix's entries at `columns` (sorted), renumbered as positions in it."""
    matrix = sp.csr_matrix(matrix)
    at = np.minimum(np.searchsorted(columns, matrix.indices), max(columns.size - 1, 0))
    keep = columns[at] == matrix.indices if columns.size else np.zeros(0, bool)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return sp.csr_matrix((matrix.data[keep], (rows[keep], at[keep])),
                         shape=(matrix.shape[0], columns.size), dtype=np.float32)


def _row(batch: UserBatch, j: int) -> UserBatch:
    return UserBatch(users=batch.users[j:j + 1], history=batch.history[j],
                     attributes={k: v[j:j + 1] for k, v in batch.attributes.items()},
                     recent=None if batch.recent is None else batch.recent[j:j + 1],
                     bought=None if batch.bought is None else batch.bought[j])


def _ivf_index(factors: np.ndarray) -> Any:
    """Inverted lists over the item factors, by inner product (about √n lists; a query
    scans `nprobe` of them)."""
    import faiss

    n, k = factors.shape
    lists = max(1, int(np.sqrt(n)))
    quantizer = faiss.IndexFlatIP(k)
    index = faiss.IndexIVFFlat(quantizer, k, lists, faiss.METRIC_INNER_PRODUCT)
    train = factors[np.random.default_rng(0).choice(n, size=min(n, 40 * lists),
                                                    replace=False)]
    index.train(np.ascontiguousarray(train))
    index.add(np.ascontiguousarray(factors))
    return index


def path_for(model: RecommenderModel) -> CandidatePath | None:
    """The model's candidate path when its catalog is above `ABOVE` and the path is
    built; the first call starts building it in a background thread (None until then,
    and when faiss is not installed: lists are then ranked exactly)."""
    if model.n_items <= ABOVE:
        return None
    state = model.__dict__.get(_STATE)
    if isinstance(state, CandidatePath):
        return state
    with _LOCK:
        if _STATE not in model.__dict__:
            model.__dict__[_STATE] = "building"
            threading.Thread(target=_build, args=(model,), daemon=True,
                             name="candidate-index").start()
    return None


def status(model: RecommenderModel) -> str:
    """How lists of this model are ranked: `exact`, `candidates`, or `exact (building
    the candidate index)` / `exact (faiss not installed)` above `ABOVE` items."""
    if model.n_items <= ABOVE:
        return "exact"
    state = model.__dict__.get(_STATE)
    if isinstance(state, CandidatePath):
        return "candidates"
    return {"unavailable": "exact (faiss not installed)",
            "failed": "exact (the candidate index failed: see the log)"}.get(
                str(state), "exact (building the candidate index)")


def _build(model: RecommenderModel) -> None:
    try:
        path = CandidatePath.build(model)
    except ImportError:
        log.warning("a %d-item catalog is ranked exactly: install faiss-cpu "
                    "(pip install 'recsvc[ann]') for candidate generation", model.n_items)
        model.__dict__[_STATE] = "unavailable"
        return
    except Exception:  # never a broken list: the exact path stays, and says why
        log.exception("the candidate index could not be built; lists are ranked exactly")
        model.__dict__[_STATE] = "failed"
        return
    model.__dict__[_STATE] = path
    log.info("candidate index ready: %d items", model.n_items)
