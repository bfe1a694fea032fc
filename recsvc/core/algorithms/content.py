"""Content model: items as vectors of their text (TF-IDF over title, description and
tags), category path, brand and price band; a user as the weighted mean of the items they
touched. It knows an item from its catalog row alone, so a brand-new item with no
interactions can be recommended on its first day.

What turns a catalog row into a vector (the text vocabulary and its idf, the category
paths, brands and price bands seen in training) is saved with the model (`Vocabulary`),
so the service encodes an item created after training (`PUT /items/{id}`) and a search
query exactly as training encoded the catalog, without scikit-learn."""

from __future__ import annotations

import contextlib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
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
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
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


def _price(value: Any) -> float:  # noqa: ANN401
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _column(items: pd.DataFrame, name: str) -> pd.Series:
    import pandas as pd

    if name not in items.columns:
        return pd.Series([""] * len(items), index=items.index, dtype=object)
    return items[name].astype("string").fillna("").astype(object)


def category_tokens(path: str) -> list[str]:
    """`Home > Kitchen > Knives` -> every prefix, so siblings share their parent."""
    parts = [p.strip() for p in str(path).replace("/", ">").split(">") if p.strip()]
    return ["cat:" + " > ".join(parts[: i + 1]).lower() for i in range(len(parts))]


def price_edges(prices: Any, bands: int) -> np.ndarray:  # noqa: ANN401
    """Edges of `bands` quantile bands of the known (positive) log prices."""
    import pandas as pd

    values = pd.to_numeric(pd.Series(prices), errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(values) & (values > 0)
    if known.sum() < 2:
        return np.zeros(0)
    return np.unique(np.quantile(np.log(values[known]), np.linspace(0, 1, bands + 1)[1:-1]))


def one_hot(codes: np.ndarray, width: int) -> sp.csr_matrix:
    """One row per item with a single 1 at its code; an empty row where the code is -1."""
    rows = np.flatnonzero(codes >= 0)
    return sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, codes[rows])),
                         shape=(len(codes), max(width, 1)))


def item_text(row: Mapping[str, Any]) -> str:
    """The text of a catalog row, as the vocabulary reads it."""
    tags = re.sub(TAG_SEPARATORS, " ", str(row.get("tags") or ""))
    return " ".join([str(row.get("title") or ""), str(row.get("description") or ""), tags])


@dataclass
class Vocabulary:
    """What a catalog row is encoded with (fitted on the training catalog)."""

    terms: np.ndarray  # text terms, in column order
    idf: np.ndarray  # float32, per term
    categories: np.ndarray  # category-path tokens, in column order
    brands: np.ndarray  # lower-case brands, in column order
    price_edges: np.ndarray  # log-price band edges (bands = edges + 1)

    @cached_property
    def term_column(self) -> dict[str, int]:
        return {t: j for j, t in enumerate(self.terms.tolist())}

    @cached_property
    def category_column(self) -> dict[str, int]:
        return {t: j for j, t in enumerate(self.categories.tolist())}

    @cached_property
    def brand_column(self) -> dict[str, int]:
        return {t: j for j, t in enumerate(self.brands.tolist())}

    def text(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows (sublinear tf, l2-normalized), as scikit-learn's transform gives
        them for the fitted vocabulary."""
        column, idf = self.term_column, self.idf
        indptr, indices, data = [0], [], []
        for text in texts:
            counts = Counter(column[t] for t in TOKEN.findall(text.lower()) if t in column)
            for j, c in sorted(counts.items()):
                indices.append(j)
                data.append((1.0 + math.log(c)) * float(idf[j]))
            indptr.append(len(indices))
        matrix = sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int32),
                                np.asarray(indptr, np.int64)),
                               shape=(len(texts), max(len(column), 1)))
        return normalize(matrix)

    def category(self, paths: Sequence[str]) -> sp.csr_matrix:
        column = self.category_column
        rows = [[column[t] for t in category_tokens(p) if t in column] for p in paths]
        return _rows(rows, len(column))

    def brand(self, brands: Sequence[str]) -> sp.csr_matrix:
        column = self.brand_column
        return _rows([[column[b.strip().lower()]] if b.strip().lower() in column else []
                      for b in brands], len(column))

    def price(self, prices: Sequence[float]) -> sp.csr_matrix:
        values = np.asarray(prices, dtype=np.float64)
        known = np.isfinite(values) & (values > 0)
        band = np.full(values.size, -1, dtype=np.int64)
        band[known] = np.searchsorted(self.price_edges, np.log(values[known]))
        return one_hot(band, self.price_edges.size + 1)

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.terms", self.terms)
        out.save_array(f"{prefix}.idf", self.idf)
        out.save_array(f"{prefix}.categories", self.categories)
        out.save_array(f"{prefix}.brands", self.brands)
        out.save_array(f"{prefix}.price_edges", self.price_edges)

    @classmethod
    def restore(cls, stored: StoredVersion, prefix: str) -> Vocabulary | None:
        if not stored.has_array(f"{prefix}.terms"):
            return None  # written before vocabularies were kept
        return cls(*(stored.array(f"{prefix}.{name}", mmap=False) for name in
                     ("terms", "idf", "categories", "brands", "price_edges")))


def _rows(columns: list[list[int]], width: int) -> sp.csr_matrix:
    """A 0/1 matrix with the given columns set in each row."""
    indptr = np.cumsum([0, *(len(c) for c in columns)])
    indices = np.asarray([j for c in columns for j in c], dtype=np.int32)
    return sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr),
                         shape=(len(columns), max(width, 1)))


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
        self.vocabulary: Vocabulary | None = None

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
        """Fit the vocabulary on the training catalog and encode it."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        p = self.params
        text = (
            _column(items, "title") + " " + _column(items, "description") + " "
            + _column(items, "tags").str.replace(TAG_SEPARATORS, " ", regex=True)
        )
        terms, idf = np.zeros(0, dtype="<U1"), np.zeros(0, np.float32)
        if p.text_weight > 0 and text.str.strip().astype(bool).any():
            tfidf = TfidfVectorizer(
                sublinear_tf=True, stop_words="english", max_features=p.max_features,
                min_df=2 if len(items) >= 1000 else 1, dtype=np.float32,
            )
            with contextlib.suppress(ValueError):  # only stop words: no vocabulary at all
                tfidf.fit(text)
                terms = np.asarray(tfidf.get_feature_names_out(), dtype=str)
                idf = tfidf.idf_.astype(np.float32)
        paths = _column(items, "category").str.strip()
        brands = _column(items, "brand").str.strip().str.lower()
        edges = price_edges(items["price"] if "price" in items.columns else [],
                            p.price_bands)
        self.vocabulary = Vocabulary(
            terms, idf,
            np.asarray(sorted({t for path in paths.unique() for t in category_tokens(path)}),
                       dtype=str),
            np.asarray(sorted({b for b in brands.unique() if b}), dtype=str),
            edges.astype(np.float64))
        return self.encode(items.to_dict("records"))

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
        """Catalog rows (title, description, tags, category, brand, price) as item
        vectors, in the space of the training catalog's."""
        vocabulary = self.vocabulary
        if vocabulary is None:
            raise ValueError("this model was written before the content vocabulary was "
                             "kept: train again to encode new items")
        p = self.params
        blocks = [
            (p.text_weight, vocabulary.text([item_text(r) for r in rows])),
            (p.category_weight, vocabulary.category([str(r.get("category") or "")
                                                     for r in rows])),
            (p.brand_weight, vocabulary.brand([str(r.get("brand") or "") for r in rows])),
            (p.price_weight, vocabulary.price([_price(r.get("price")) for r in rows])),
        ]
        out = sp.hstack([weight * normalize(block) for weight, block in blocks], format="csr")
        return sp.csr_matrix(normalize(out), dtype=np.float32)

    def match(self, query: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The catalog items whose text best matches a search query, best first, and
        their similarity (cosine over the text terms; only matches above zero)."""
        vocabulary = self.vocabulary
        if vocabulary is None or vocabulary.terms.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = vocabulary.text([query])
        if q.nnz == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        width = vocabulary.terms.size  # the text block comes first
        scores = np.asarray((self.item_vectors[:, :width] @ q.T).todense(),
                            dtype=np.float32).ravel()
        top = np.argsort(-scores, kind="stable")[:n]
        top = top[scores[top] > 0]
        return top.astype(np.int64), scores[top]

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

    def score_at(self, batch: UserBatch, items: np.ndarray) -> np.ndarray | None:
        if self.item_similarity is not None:
            return None  # a few rows of the similarity matrix: cheap as they are
        profiles = self.profiles(batch.history)
        return np.asarray((self.item_vectors[items] @ profiles.T).T.toarray(),
                          dtype=np.float32)

    def similar(self, items: np.ndarray) -> np.ndarray:
        query = self.item_vectors[items]
        return np.asarray((self.item_vectors @ query.T).T.todense(), dtype=np.float32)

    def item_relation(self) -> ItemRelation:
        similarity = self.item_similarity
        if similarity is not None:
            return ItemRelation(dense=similarity)
        return ItemRelation(vectors=self.item_vectors)

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        out.__dict__.pop("_item_similarity", None)
        out.item_vectors = sp.csr_matrix(sp.vstack([self.item_vectors, self.encode(rows)]),
                                         dtype=np.float32)
        _ = out.item_similarity  # built now, not by the first shopper to need it
        return out

    def check(self, n_users: int, n_items: int) -> None:
        expect_csr("content.item_vectors", self.item_vectors,
                   (n_items, self.item_vectors.shape[1]))

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_csr(f"{prefix}.item_vectors", self.item_vectors)
        if self.vocabulary is not None:
            self.vocabulary.save(out, prefix)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.item_vectors = stored.csr(f"{prefix}.item_vectors")
        self.vocabulary = Vocabulary.restore(stored, prefix)
        # Computed with the model's load (off the service's request path, and before
        # warm-cache forks its workers), not by the first shopper to need it.
        _ = self.item_similarity
