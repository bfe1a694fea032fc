"""Frequency caps and pages: an item shown k times without a click is hidden for a while;
the pages of one visit never repeat an item. Kept in a real Redis, per shopper."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from recsvc.core.policy.frequency import (
    FrequencyPolicy,
    Shown,
    capped,
    earlier_pages,
    parse,
    record,
)
from tests.test_service import KEY, start_service, train_planted


@pytest.fixture
def capped_service(tmp_path: Path, redis_server):
    redis.Redis.from_url(redis_server.url).flushdb()
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store, redis_url=redis_server.url, frequency_cap=2,
                        frequency_cooldown_s=1.5, impressions=False)
    yield svc, redis.Redis.from_url(redis_server.url)
    svc.http.close()
    svc.server.stop()


def shown_fields(client: redis.Redis, user: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(f"recsvc:shown:{{{user}}}").items()}


def until(check) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 30  # the hash is written just after each answer
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_policy_known_answers() -> None:
    policy = FrequencyPolicy(cap=2, cooldown_s=10, window_s=100, page_memory_s=60)
    shown = Shown()
    fields, drop = record(shown, policy, ["x", "y"], 1, now=1000.0)
    assert fields == {"i:x": b"1,1000.000", "i:y": b"1,1000.000", "p:1": b"1000.000|x\x1fy"}
    shown = parse({k.encode(): v for k, v in fields.items()})
    assert capped(shown, policy, 1001.0) == []
    shown = parse({k.encode(): v for k, v in
                   record(shown, policy, ["x"], 1, now=1002.0)[0].items()} | {
        b"i:y": b"1,1000.000"})
    assert shown.counts["x"] == (2, 1002.0)
    assert capped(shown, policy, 1005.0) == ["x"]  # twice without a click: hidden
    assert capped(shown, policy, 1012.5) == []  # the cooldown is over
    # Shown again after the cooldown, or after a gap longer than the window: counted anew.
    assert record(shown, policy, ["x"], 1, now=1013.0)[0]["i:x"] == b"1,1013.000"
    assert record(shown, policy, ["y"], 1, now=1101.0)[0]["i:y"] == b"1,1101.000"
    # A new visit forgets the later pages of the last one.
    shown.pages = {1: (1000.0, ["x"]), 2: (1000.0, ["y"])}
    assert record(shown, policy, ["z"], 1, now=1003.0)[1] == ["p:2"]
    # Page 3 hides what pages 1 and 2 showed, when both are remembered; else it is a
    # plain slice (None).
    assert earlier_pages(shown, policy, 3, now=1030.0) == ["x", "y"]
    assert earlier_pages(shown, policy, 3, now=1061.0) is None  # forgotten after 60 s
    assert earlier_pages(shown, policy, 4, now=1030.0) is None  # page 3 never asked
    assert parse({b"i:x": b"garbage", b"p:x": b"1|a"}).counts == {}  # foreign: ignored


def test_a_cap_hides_an_item_after_k_unclicked_impressions(capped_service) -> None:
    svc, client = capped_service
    first = svc.items("/recommend", user_id="bu0", n=3)
    assert svc.items("/recommend", user_id="bu0", n=3) == first  # shown twice
    until(lambda: all(shown_fields(client, "bu0").get(f"i:{i}", "").startswith("2,")
                      for i in first))
    third = svc.items("/recommend", user_id="bu0", n=3)
    assert not set(third) & set(first)  # capped: hidden
    # A click on one of them restarts its count; the others stay hidden until the
    # cooldown is over.
    clicked = first[0]
    assert svc.http.post("/events", json=[{"user_id": "bu0", "item_id": clicked,
                                           "event_type": "click"}]).status_code == 200
    assert f"i:{clicked}" not in shown_fields(client, "bu0")
    assert not set(svc.items("/recommend", user_id="bu0", n=3)) & set(first[1:])
    time.sleep(1.6)  # the cooldown (1.5 s)
    assert set(first[1:]) <= set(svc.items("/recommend", user_id="bu0", n=5))
    # An operator looking at the shopper's list counts nothing.
    listed = svc.items("/recommend", user_id="au0", n=3)
    until(lambda: all(f"i:{i}" in shown_fields(client, "au0") for i in listed))
    before = shown_fields(client, "au0")
    svc.http.post("/dashboard/login", content="key=s3cret",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    page = svc.http.get("/dashboard/shopper", params={"user_id": "au0"})
    assert page.status_code == 200 and "au0" in page.text
    time.sleep(0.2)
    assert shown_fields(client, "au0") == before
    # Forgetting the shopper deletes what they were shown.
    assert svc.http.delete("/users/bu0", headers=KEY).status_code == 200
    assert not client.exists("recsvc:shown:{bu0}")


def test_pages_of_one_visit_never_repeat(tmp_path: Path, redis_server) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store, redis_url=redis_server.url, impressions=False)
    try:
        six = svc.items("/recommend", user_id="au0", n=6)
        page1 = svc.items("/recommend", user_id="au0", n=3, page=1)
        assert page1 == six[:3]
        until(lambda: "p:1" in shown_fields(redis.Redis.from_url(redis_server.url), "au0"))
        assert svc.items("/recommend", user_id="au0", n=3, page=2) == six[3:]
        # Between two pages the shopper clicks and buys: their list is made again, in
        # another order; page 2 still shows nothing page 1 showed.
        svc.http.post("/events", json=[{"user_id": "au0", "item_id": i, "event_type": e}
                                       for i in ("b1", "b2") for e in ("click", "purchase")])
        page1 = svc.items("/recommend", user_id="au0", n=3, page=1)
        until(lambda: shown_fields(redis.Redis.from_url(redis_server.url), "au0")["p:1"]
              .endswith("\x1f".join(page1)))
        page2 = svc.items("/recommend", user_id="au0", n=3, page=2)
        page3 = svc.items("/recommend", user_id="au0", n=3, page=3)
        assert len(page2) == 3 and not set(page1) & set(page2)
        assert not (set(page1) | set(page2)) & set(page3)
        # Without `page`, nothing is remembered (it costs a write); a stranger has no
        # memory: pages are plain slices of the one list.
        client = redis.Redis.from_url(redis_server.url)
        svc.items("/recommend", user_id="au9", n=3)
        time.sleep(0.2)
        assert not client.exists("recsvc:shown:{au9}")
        anonymous = svc.items("/recommend", n=4, recent_items="a1")
        assert svc.items("/recommend", n=2, page=2, recent_items="a1") == anonymous[2:]
        bad = svc.get("/recommend", user_id="au0", page=0)
        assert bad.status_code == 422 and "page" in bad.text
    finally:
        svc.http.close()
        svc.server.stop()


def test_a_page_beyond_the_cached_candidates_is_made_longer(tmp_path: Path) -> None:
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store, cache_list_size=4, impressions=False)
    try:
        first = svc.items("/recommend", user_id="bu0", n=3)  # caches 4 candidates
        second = svc.items("/recommend", user_id="bu0", n=3, page=2)
        assert len(second) == 3 and not set(first) & set(second)
        assert svc.items("/recommend", user_id="bu0", n=3, page=1) == first
    finally:
        svc.http.close()
        svc.server.stop()


def test_rotation_changes_the_lower_places_from_one_period_to_the_next() -> None:
    from recsvc.core.policy.frequency import rotate, rotating

    positions = list(range(16))  # a list's places, best first
    assert rotating(10, 0.2, pinned=0) == 2 and rotating(10, 0.5, pinned=8) == 2
    assert rotate(positions, 10, 0, "u1", 7) == positions[:10]  # no rotation
    same = rotate(positions, 10, 2, "u1", 7)
    assert same == rotate(positions, 10, 2, "u1", 7)  # one period: one list
    assert same[:8] == positions[:8] and len(set(same)) == 10
    assert all(8 <= p < 14 for p in same[8:]) and same[8:] == sorted(same[8:])
    draws = {tuple(rotate(positions, 10, 2, "u1", period)[8:]) for period in range(40)}
    assert len(draws) > 5  # repeated visits see change, period after period
    assert rotate(list(range(10)), 10, 2, "u1", 7) == list(range(10))  # nothing behind


def test_rotation_through_the_service(tmp_path: Path) -> None:
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store, rotation=0.5, rotation_period_s=1e9,
                        impressions=False)
    plain = start_service(tmp_path, store, impressions=False)
    try:
        rotated = svc.items("/recommend", user_id="au0", n=4)
        assert rotated == svc.items("/recommend", user_id="au0", n=4)  # one period
        ranked = plain.items("/recommend", user_id="au0", n=8)
        assert rotated[:2] == ranked[:2] and set(rotated[2:]) <= set(ranked[2:8])
        # Pages keep their slices: no rotation there.
        assert svc.items("/recommend", user_id="au0", n=4, page=1) == ranked[:4]
    finally:
        for s in (svc, plain):
            s.http.close()
            s.server.stop()
