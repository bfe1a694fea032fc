"""Popularity and trending: the cold-start fallbacks, and a signal in the blend.

Popularity counts people, not units: each user adds log(1 + min(confidence, cap)) to an
item, so one wholesaler counts no more than a shopper who bought it twice. It is also
kept per value of each user attribute (segment, region, ...), for shoppers whose
attributes are known."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    Reason,
    Recommender,
    TrainingData,
    UserBatch,
    confidence,
    expect_finite,
    expect_shape,
    logged,
    padded,
)
from recsvc.core.algorithms.forms import Form, SharedRows

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


# At most this many cells (float32) of rows by combination of attributes are kept.
_COMBINATION_CELLS = 16_000_000


class PopularityParams(AlgorithmParams):
    attributes: list[str] = Field(default_factory=lambda: ["segment", "region", "tier"],
                                  description="user attributes it is kept per value of")
    cap: float = Field(20.0, gt=0, description="most one user's confidence adds")


class Popularity(Recommender):
    name = "popularity"
    Params = PopularityParams
    form = Form.SHARED_ROWS
    reason = Reason.POPULAR
    start_weight = 0.25
    cold_start_weight = 1.0
    params: PopularityParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        # The attributes it holds: those of `params.attributes` the data had.
        self.attributes = list(self.params.attributes)
        self.overall = np.zeros(0, dtype=np.float32)
        self.by_attribute: dict[str, np.ndarray] = {}  # attribute -> values x items

    def user_attributes(self) -> list[str]:
        return list(self.params.attributes)

    def fit(self, data: TrainingData) -> Self:
        per_user = sp.csr_matrix(data.user_items, dtype=np.float32, copy=True)
        np.minimum(per_user.data, self.params.cap, out=per_user.data)
        per_user = confidence(per_user)
        self.overall = np.asarray(per_user.sum(axis=0), dtype=np.float32).ravel()
        self.by_attribute = {}
        for cache in ("_log_group_cache", "_combination_rows", "_best"):  # of an earlier fit
            self.__dict__.pop(cache, None)
        for name in self.params.attributes:
            if name not in data.user_attributes:
                continue
            codes, values = data.user_attributes[name]
            known = codes >= 0
            indicator = sp.csr_matrix(
                (np.ones(int(known.sum()), dtype=np.float32),
                 (codes[known], np.flatnonzero(known))),
                shape=(len(values), data.n_users),
            )
            self.by_attribute[name] = np.asarray((indicator @ per_user).todense(),
                                                 dtype=np.float32)
        self.attributes = [a for a in self.attributes if a in self.by_attribute]
        return self

    def overall_scores(self) -> np.ndarray:
        """log1p of overall popularity, the scale every ranking by popularity uses."""
        return logged(self, "overall")

    def group_scores(self, attribute: str, code: int) -> np.ndarray:
        """Popularity among users with this attribute value, on the overall scale."""
        group = self.by_attribute[attribute][code]
        total = float(group.sum())
        if total <= 0:
            return self.overall
        return group * (float(self.overall.sum()) / total)

    def _log_groups(self, attribute: str) -> np.ndarray:
        """log1p of every group's scores (values x items), computed once."""
        cache = self.__dict__.setdefault("_log_group_cache", {})
        if attribute not in cache:
            matrix = self.by_attribute[attribute]
            cache[attribute] = np.log1p(np.stack(
                [self.group_scores(attribute, code) for code in range(matrix.shape[0])]
            ).astype(np.float32)) if matrix.shape[0] else np.zeros((0, self.overall.size),
                                                                  np.float32)
        return cache[attribute]

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> SharedRows:
        """Half the shopper's own groups, half everyone: small groups stay stable.
        Shoppers with the same attributes share a row, computed once."""
        names = [n for n in self.attributes if n in batch.attributes]
        n = len(batch)
        overall = logged(self, "overall")
        if not names:
            return SharedRows(overall[None, :], np.zeros(n, dtype=np.int64))
        codes = np.stack([np.asarray(batch.attributes[name]) for name in names], axis=1)
        combos, which = np.unique(codes, axis=0, return_inverse=True)
        rows = np.empty((combos.shape[0], overall.size), dtype=np.float32)
        # Rows by combination of attributes, kept across batches (a shop has few
        # combinations; `warm-cache` asks for the same ones thousands of times).
        known = self.__dict__.setdefault("_combination_rows", {})
        for r, combo in enumerate(combos.tolist()):
            key = (tuple(names), tuple(combo))
            row = known.get(key)
            if row is None:
                groups = [self._log_groups(name)[code]
                          for name, code in zip(names, combo, strict=True) if code >= 0]
                row = 0.5 * overall + 0.5 * np.mean(groups, axis=0) if groups else overall
                if len(known) * overall.size < _COMBINATION_CELLS:
                    known[key] = row
            rows[r] = row
        return SharedRows(rows, np.asarray(which, dtype=np.int64).reshape(-1))

    def score_at(self, batch: UserBatch, items: np.ndarray) -> np.ndarray | None:
        """`score_compact` at `items` alone, for shoppers with attributes (a million
        items' combination rows would be built per request); None without any."""
        names = [n for n in self.attributes if n in batch.attributes]
        if not names:
            return None  # the overall row, shared as it is
        overall = logged(self, "overall")[items]
        out = np.empty((len(batch), items.size), dtype=np.float32)
        for j in range(len(batch)):
            groups = [self._log_groups(name)[code, items] for name in names
                      if (code := int(batch.attributes[name][j])) >= 0]
            out[j] = 0.5 * overall + 0.5 * np.mean(groups, axis=0) if groups else overall
        return out

    def best_items(self, batch: UserBatch, k: int) -> np.ndarray:
        """The k most popular overall and in each of the shoppers' groups: a mix of
        rows ranks high only where one of them does."""
        rows = [("overall", -1)]
        for name in (n for n in self.attributes if n in batch.attributes):
            rows += [(name, int(c)) for c in np.unique(batch.attributes[name]) if c >= 0]
        best = self.__dict__.setdefault("_best", {})
        out = []
        for name, code in rows:
            if (name, code, k) not in best:
                row = (logged(self, "overall") if name == "overall"
                       else self._log_groups(name)[code])
                k_ = min(k, row.size)
                best[(name, code, k)] = np.argpartition(-row, k_ - 1)[:k_].astype(np.int64)
            out.append(best[(name, code, k)])
        return np.concatenate(out)

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        for cache in ("_log_group_cache", "_combination_rows", "_best"):
            out.__dict__.pop(cache, None)
        out.overall = padded(self.overall, len(rows))
        out.by_attribute = {a: padded(v, len(rows), axes=(v.ndim - 1,))
                            for a, v in self.by_attribute.items()}
        return out

    def check(self, n_users: int, n_items: int) -> None:
        expect_shape("popularity.overall", self.overall, (n_items,))
        expect_finite("popularity.overall", self.overall)
        for name, matrix in self.by_attribute.items():
            expect_shape(f"popularity.by_{name}", matrix, (matrix.shape[0], n_items))
            expect_finite(f"popularity.by_{name}", matrix)

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.overall", self.overall)
        for name, matrix in self.by_attribute.items():
            out.save_array(f"{prefix}.by_{name}", matrix)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.overall = stored.array(f"{prefix}.overall")
        self.attributes = [a for a in self.attributes if stored.has_array(f"{prefix}.by_{a}")]
        self.by_attribute = {a: stored.array(f"{prefix}.by_{a}") for a in self.attributes}
