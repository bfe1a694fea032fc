"""The cached list format: round trip, filtering, and foreign values."""

from __future__ import annotations

import numpy as np

from recsvc.fastpath import plain_query
from recsvc.lists import items_json, pack, select, to_entries, unpack


def entries(n: int) -> list[list]:
    return [[i, f"item{i}", float(n - i), [{"code": "popular"}]] for i in range(n)]


def test_round_trip_and_select() -> None:
    packed = unpack(pack(entries(6)))
    assert packed is not None and len(packed) == 6
    assert to_entries(packed)[2] == {"item_id": "item2", "score": 4.0,
                                     "reasons": [{"code": "popular"}]}
    allowed = np.array([True, False, True, True, True, True])
    assert select(packed, 3, allowed) == [0, 2, 3]
    category = np.array([0, 0, 0, 1, 1, 1])
    assert select(packed, 4, allowed, category, max_per_category=1) == [0, 3]
    assert items_json(packed, [0, 2]).startswith(b'[{"item_id":"item0"')
    # A list written for a bigger catalog keeps only what indexes this one.
    assert select(packed, 10, np.ones(4, dtype=bool)) == [0, 1, 2, 3]


def test_foreign_or_truncated_values_are_refused() -> None:
    raw = pack(entries(3))
    assert unpack(b"") is None and unpack(b"[1,2,3]") is None
    assert unpack(raw[:-1]) is None and unpack(raw[:10]) is None
    assert len(unpack(pack([]))) == 0


def test_plain_query_recognizes_only_the_plain_request() -> None:
    assert plain_query(b"user_id=U1&n=5") == ("U1", 5)
    assert plain_query(b"user_id=U%20x") == ("U x", 10)
    for query in (b"user_id=U1&n=0", b"user_id=U1&n=101", b"user_id=U1&n=ten", b"n=5",
                  b"user_id=", b"user_id=U1&category=x", b"user_id=U1&user_id=U2",
                  b"user_id=%FF", b"user_id=" + b"x" * 300):
        assert plain_query(query) is None, query
