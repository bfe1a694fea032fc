"""The cached list format: round trip, filtering, rendering and foreign values."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from recsvc.explain import BECAUSE, NONE, POPULAR_IN, PROMOTED, TRENDING
from recsvc.fastpath import plain_query
from recsvc.lists import ListRenderer, pack_batch, select, unpack
from recsvc.model import load_model
from tests.test_service import train_planted


def packed_rows(n: int) -> list[bytes]:
    items = np.arange(n)[None, :]
    scores = np.linspace(2.0, 1.0, n, dtype=np.float32)[None, :]
    codes = np.zeros((1, n, 3), dtype=np.uint8)
    codes[0, :, 0] = TRENDING
    codes[0, 0] = [PROMOTED, POPULAR_IN, NONE]
    codes[0, 1] = [BECAUSE, TRENDING, NONE]
    anchors = np.full((1, n), -1)
    anchors[0, 1] = 5
    return pack_batch(items, scores, codes, anchors, np.array([n]))


def test_round_trip_select_and_render(tmp_path) -> None:
    packed = unpack(packed_rows(6)[0])
    assert packed is not None and len(packed) == 6
    allowed = np.array([True, False, True, True, True, True])
    assert select(packed, 3, allowed) == [0, 2, 3]
    category = np.array([0, 0, 0, 1, 1, 1])
    assert select(packed, 4, allowed, category, max_per_category=1) == [0, 3]
    assert select(packed, 10, np.ones(4, dtype=bool)) == [0, 1, 2, 3]  # another catalog
    train_planted(tmp_path)
    model = load_model(tmp_path / "m")
    renderer = ListRenderer(model)
    items = orjson.loads(renderer.items_json(packed, [0, 1, 2]))
    ids = model.item_ids
    assert items[0] == {"item_id": str(ids[0]), "score": 2.0, "reasons": [
        {"code": "promoted"},
        {"code": "popular_in", "category": str(model.category_names[model.item_category[0]])}]}
    assert items[1]["reasons"] == [{"code": "because_you_bought", "item_id": str(ids[5])},
                                   {"code": "trending"}]
    assert items[2]["score"] == pytest.approx(1.6)


def test_foreign_or_truncated_values_are_refused() -> None:
    raw = packed_rows(3)[0]
    assert unpack(b"") is None and unpack(b"[1,2,3]") is None
    assert unpack(raw[:-1]) is None and unpack(raw[:10]) is None
    assert unpack(raw + b"x") is None
    empty = pack_batch(np.zeros((1, 0), int), np.zeros((1, 0)), np.zeros((1, 0, 3)),
                       np.zeros((1, 0), int), np.array([0]))[0]
    assert len(unpack(empty)) == 0


def test_plain_query_recognizes_only_the_plain_request() -> None:
    assert plain_query(b"user_id=U1&n=5") == ("U1", 5)
    assert plain_query(b"user_id=U%20x") == ("U x", 10)
    for query in (b"user_id=U1&n=0", b"user_id=U1&n=101", b"user_id=U1&n=ten", b"n=5",
                  b"user_id=", b"user_id=U1&category=x", b"user_id=U1&user_id=U2",
                  b"user_id=%FF", b"user_id=" + b"x" * 300):
        assert plain_query(query) is None, query
