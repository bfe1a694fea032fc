"""The cached list format: round trip, filtering, rendering and foreign values."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from fastapi.exceptions import RequestValidationError

from recsvc.core.model import load_model
from recsvc.core.policy.filters import FilterStage
from recsvc.core.ranking.explain import BECAUSE, NONE, POPULAR_IN, TRENDING
from recsvc.core.ranking.packed import PROMOTED, ListRenderer, pack_batch, unpack
from recsvc.service.query import parse_recommend
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
    category = np.array([0, 0, 0, 1, 1, 1])
    assert FilterStage(allowed, category).select(packed.items, 3) == [0, 2, 3]
    # One a category while others can fill the list; past that, n items still (the best
    # of those held back, in rank order), never fewer than the catalog allows.
    assert FilterStage(allowed, category, 1).select(packed.items, 2) == [0, 3]
    assert FilterStage(allowed, category, 1).select(packed.items, 4) == [0, 2, 3, 4]
    assert FilterStage(allowed, category, 1).select(packed.items, 9) == [0, 2, 3, 4, 5]
    another = FilterStage(np.ones(4, dtype=bool), category[:4])  # another catalog
    assert another.select(packed.items, 10) == [0, 1, 2, 3]
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


def test_the_category_cap_equals_its_one_at_a_time_statement() -> None:
    from tests.oracle import capped_positions

    rng = np.random.default_rng(7)
    for trial in range(300):
        n_items = int(rng.integers(5, 60))
        category = rng.integers(-1, int(rng.integers(1, 6)), n_items)
        allowed = rng.random(n_items) < 0.8
        items = rng.permutation(n_items)[:int(rng.integers(1, n_items + 1))]
        n, cap, fixed = int(rng.integers(1, 15)), int(rng.integers(1, 4)), int(
            rng.integers(0, 3))
        fixed = min(fixed, int(allowed[items[:fixed]].all()) * fixed)  # pins are allowed
        stage = FilterStage(allowed, category, cap)
        assert stage.select(items, n, fixed) == capped_positions(
            allowed, category, items, n, cap, fixed), trial


def test_pins_are_read_time_first_promoted_and_keep_their_reasons() -> None:
    raw = pack_batch(np.arange(6)[None, :], np.linspace(2.0, 1.0, 6)[None, :],
                     np.full((1, 6, 3), [TRENDING, NONE, NONE]), np.full((1, 6), -1),
                     np.array([6]), tag=77)[0]
    packed = unpack(raw)
    assert packed.tag == 77
    allowed = np.array([True] * 5 + [False] + [True] * 4)  # a 10-item catalog; 5 hidden
    category = np.array([0, 0, 1, 1, 2, 2, 3, 3, 3, 3])
    stage = FilterStage(allowed, category, 1, pins=np.array([8, 3, 9, 5]))
    shown, positions = stage.show(packed, 4)
    # 5 is not allowed (no pin shows a hidden item); 9 and 8 share a category, both
    # shown (pins pass the cap), and 3, pinned, leaves its place.
    assert shown.items[positions].tolist() == [8, 3, 9, 0]
    assert shown.codes[1].tolist() == [PROMOTED, TRENDING, NONE]  # listed before
    assert shown.codes[0].tolist() == [PROMOTED, NONE, NONE]
    assert shown.scores[0] == shown.scores.max() and shown.tag == 77
    # No pins: the list as it was, nothing copied.
    assert FilterStage(allowed, category).show(packed, 3)[0] is packed


def test_foreign_or_truncated_values_are_refused() -> None:
    raw = packed_rows(3)[0]
    assert unpack(b"") is None and unpack(b"[1,2,3]") is None
    assert unpack(raw[:-1]) is None and unpack(raw[:10]) is None
    assert unpack(raw + b"x") is None
    empty = pack_batch(np.zeros((1, 0), int), np.zeros((1, 0)), np.zeros((1, 0, 3)),
                       np.zeros((1, 0), int), np.array([0]))[0]
    assert len(unpack(empty)) == 0


def test_the_recommend_query_is_read_as_starlette_reads_it() -> None:
    """One parser for the route and the fast path: lists repeated or comma-separated,
    the last of repeated single values, every bound of `RecommendParams` enforced."""
    query = parse_recommend(b"user_id=U%20x&n=5&exclude=a,b&exclude=c&segment=pro"
                            b"&user_id=U2&min_price=1.5")
    assert (query.user_id, query.n, query.exclude) == ("U2", 5, ("a", "b", "c"))
    assert query.attributes == {"segment": "pro"} and query.min_price == 1.5
    assert not query.cacheable
    assert parse_recommend(b"user_id=U1").cacheable
    for bad in (b"user_id=U1&n=0", b"user_id=U1&n=101", b"user_id=U1&n=ten", b"user_id=",
                b"user_id=" + b"x" * 300, b"min_price=-1"):
        with pytest.raises(RequestValidationError):
            parse_recommend(bad)
