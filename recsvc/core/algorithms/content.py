"""Content model: items as vectors of their text (TF-IDF over title, description and
tags), category path, brand and price band; a user as the weighted mean of the items they
touched. It knows an item from its catalog row alone, so a brand-new item with no
interactions can be recommended on its first day."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    ItemRelation,
    Reason,
    Recommender,
    Relation,
    TrainingData,
    UserBatch,
    confidence,
    expect_csr,
)
from recsvc.core.algorithms.forms import Form, RowSums, Scores

if TYPE_CHECKING:
    import pandas as pd

    from recsvc.core.artifacts import StoredVersion

TAG_SEPARATORS = r"[|;,]"
# Up to this many items (64 MB of float32), content scores go through a dense items x
# items similarity matrix: sparse history x dense rows, like EASE.
ITEM_SIMILARITY_MAX = 4_000


def normalize(matrix: sp.spmatrix, norm: str = "l2") -> sp.csr_matrix:
    """Scale rows to unit length (l2) or unit sum (l1); empty rows stay empty. (scikit-learn
    has this too, but importing it would add a second and a half to the service's start.)
    Works on the stored values directly: a diagonal-matrix product cost a millisecond
    of scipy overhead per request for a one-row history."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.sum_duplicates()  # lengths below are of the summed entries
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    data = out.data.astype(np.float64)
    lengths = np.bincount(rows, weights=data * data if norm == "l2" else np.abs(data),
                          minlength=out.shape[0])
    if norm == "l2":
        lengths = np.sqrt(lengths)
    lengths[lengths == 0] = 1.0
    out.data *= (1.0 / lengths).astype(np.float32)[rows]
    return out


def _column(items: pd.DataFrame, name: str) -> pd.Series:
    import pandas as pd

    if name not in items.columns:
        return pd.Series([""] * len(items), index=items.index, dtype=object)
    return items[name].astype("string").fillna("").astype(object)


def category_tokens(path: str) -> list[str]:
    """`Home > Kitchen > Knives` -> every prefix, so siblings share their parent."""
    parts = [p.strip() for p in str(path).replace("/", ">").split(">") if p.strip()]
    return ["cat:" + " > ".join(parts[: i + 1]).lower() for i in range(len(parts))]


def price_bands(prices: pd.Series, bands: int) -> np.ndarray:
    """Quantile band of each item's log price; -1 where the price is unknown."""
    import pandas as pd

    values = pd.to_numeric(prices, errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(values) & (values > 0)
    out = np.full(len(values), -1, dtype=np.int64)
    if known.sum() < 2:
        return out
    edges = np.unique(np.quantile(np.log(values[known]), np.linspace(0, 1, bands + 1)[1:-1]))
    out[known] = np.searchsorted(edges, np.log(values[known]))
    return out


def one_hot(codes: np.ndarray, width: int) -> sp.csr_matrix:
    """One row per item with a single 1 at its code; an empty row where the code is -1."""
    rows = np.flatnonzero(codes >= 0)
    return sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, codes[rows])),
                         shape=(len(codes), max(width, 1)))


def category_block(categories: pd.Series) -> sp.csr_matrix:
    """Items x category-path prefixes. Built per distinct path (a catalog has few), then
    expanded to items by indexing, which keeps 200k items fast."""
    import pandas as pd

    codes, paths = pd.factorize(categories.str.strip().replace("", None))
    tokens = [category_tokens(p) for p in paths]
    vocabulary = {t: j for j, t in enumerate(sorted({t for ts in tokens for t in ts}))}
    rows = [i for i, ts in enumerate(tokens) for _ in ts]
    cols = [vocabulary[t] for ts in tokens for t in ts]
    per_path = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                             shape=(len(paths) + 1, max(len(vocabulary), 1)))
    return sp.csr_matrix(per_path[np.where(codes >= 0, codes, len(paths))])  # last row: none


class ContentParams(AlgorithmParams):
    text_weight: float = Field(1.0, ge=0)
    category_weight: float = Field(0.8, ge=0)
    brand_weight: float = Field(0.4, ge=0)
    price_weight: float = Field(0.2, ge=0)
    max_features: int = Field(50_000, ge=1)
    price_bands: int = Field(5, ge=1)


class ContentModel(Recommender):
    name = "content"
    Params = ContentParams
    form = Form.ROW_SUMS  # dense above ITEM_SIMILARITY_MAX items
    reason = Reason.ANCHORED
    relation = Relation.SIMILAR_TO
    relation_priority = 2
    start_weight = 0.25
    similar_weight = 0.5
    params: ContentParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.item_vectors = sp.csr_matrix((0, 0), dtype=np.float32)

    @classmethod
    def usable(cls, params: AlgorithmParams, data: TrainingData) -> str | None:
        if data.items is None or len(data.items.columns) <= 1:
            return "no item catalog with attributes"
        return None

    def fit(self, data: TrainingData) -> Self:
        if data.items is None:
            raise ValueError("the content model needs an item catalog")
        self.item_vectors = self.vectorize(data.items)
        return self

    def vectorize(self, items: pd.DataFrame) -> sp.csr_matrix:
        import pandas as pd
        from sklearn.feature_extraction.text import TfidfVectorizer

        p = self.params
        text = (
            _column(items, "title") + " " + _column(items, "description") + " "
            + _column(items, "tags").str.replace(TAG_SEPARATORS, " ", regex=True)
        )
        blocks: list[sp.csr_matrix] = []
        if p.text_weight > 0 and text.str.strip().astype(bool).any():
            tfidf = TfidfVectorizer(
                sublinear_tf=True, stop_words="english", max_features=p.max_features,
                min_df=2 if len(items) >= 1000 else 1, dtype=np.float32,
            )
            with contextlib.suppress(ValueError):  # only stop words: no vocabulary at all
                blocks.append(p.text_weight * normalize(tfidf.fit_transform(text)))
        brand, brands = pd.factorize(_column(items, "brand").str.strip().str.lower()
                                     .replace("", None))
        band = (price_bands(items["price"], p.price_bands) if "price" in items.columns
                else np.full(len(items), -1))
        attribute_blocks = [
            (p.category_weight, category_block(_column(items, "category"))),
            (p.brand_weight, one_hot(brand, len(brands))),
            (p.price_weight, one_hot(band, p.price_bands)),
        ]
        for weight, block in attribute_blocks:
            if weight > 0 and block.nnz:
                blocks.append(weight * normalize(block))
        if not blocks:
            return sp.csr_matrix((len(items), 1), dtype=np.float32)
        return sp.csr_matrix(normalize(sp.hstack(blocks, format="csr")), dtype=np.float32)

    def profiles(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """Each user's decayed, weighted mean of the vectors of items they touched."""
        return normalize(confidence(history), norm="l1") @ self.item_vectors

    @property
    def item_similarity(self) -> np.ndarray | None:
        """Items x items content similarity (dense), for catalogs of up to
        ITEM_SIMILARITY_MAX items; computed once (at load, or on first use after fit)."""
        n = self.item_vectors.shape[0]
        if n > ITEM_SIMILARITY_MAX:
            return None
        vectors, cached = self.__dict__.get("_item_similarity", (None, None))
        if vectors is not self.item_vectors:  # first use, or new vectors since
            cached = np.asarray((self.item_vectors @ self.item_vectors.T).toarray(),
                                dtype=np.float32)
            self.__dict__["_item_similarity"] = (self.item_vectors, cached)
        return cached

    def score(self, batch: UserBatch) -> np.ndarray:
        compact = self.score_compact(batch)
        return compact.dense() if isinstance(compact, RowSums) else compact

    def score_compact(self, batch: UserBatch) -> Scores:
        similarity = self.item_similarity
        if similarity is not None:
            # profile · item = Σ weight(j) vector(j) · item: the shopper's few items'
            # rows of the similarity matrix, half the cost of the vectors.
            return RowSums(normalize(confidence(batch.history), norm="l1"), similarity)
        profiles = sp.csr_matrix(self.profiles(batch.history))
        out = np.empty((profiles.shape[0], self.item_vectors.shape[0]), dtype=np.float32)
        # Sparse items x dense profiles: one pass over the item vectors per chunk of users
        # (a sparse x sparse product would first count, then fill, a dense-sized result).
        for start in range(0, profiles.shape[0], 256):
            dense = profiles[start:start + 256].toarray().T
            out[start:start + 256] = (self.item_vectors @ dense).T
        return out

    def similar(self, items: np.ndarray) -> np.ndarray:
        query = self.item_vectors[items]
        return np.asarray((self.item_vectors @ query.T).T.todense(), dtype=np.float32)

    def item_relation(self) -> ItemRelation:
        similarity = self.item_similarity
        if similarity is not None:
            return ItemRelation(dense=similarity)
        return ItemRelation(vectors=self.item_vectors)

    def check(self, n_users: int, n_items: int) -> None:
        expect_csr("content.item_vectors", self.item_vectors,
                   (n_items, self.item_vectors.shape[1]))

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_csr(f"{prefix}.item_vectors", self.item_vectors)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.item_vectors = stored.csr(f"{prefix}.item_vectors")
        # Computed with the model's load (off the service's request path, and before
        # warm-cache forks its workers), not by the first shopper to need it.
        _ = self.item_similarity
