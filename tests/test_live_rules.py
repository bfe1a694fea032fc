"""Merchandisers' rules take effect on the next request: on cached lists, in every
worker sharing the rules file, through the operator API or an edited file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from recsvc.core.artifacts import current_version
from recsvc.core.ranking.packed import unpack
from tests.test_service import KEY, start_service, train_planted


@pytest.fixture
def two_workers(tmp_path: Path, redis_server):
    """Two service processes' worth of state (each its own app) on one Redis and one
    rules file, as two workers or replicas are."""
    redis.Redis.from_url(redis_server.url).flushdb()
    store, _ = train_planted(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text('[pin]\nitems = ["b5"]\n')
    workers = [start_service(tmp_path, store, rules_file=rules, redis_url=redis_server.url)
               for _ in range(2)]
    yield workers, rules
    for svc in workers:
        svc.http.close()
        svc.server.stop()


def until(check, deadline_s: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_rule_changes_reach_cached_lists_at_once(two_workers, redis_server) -> None:
    (a, b), _ = two_workers
    client = redis.Redis.from_url(redis_server.url)
    key = f"recsvc:list:{current_version(a.root)}:default:{{bu0}}"
    first = a.get("/recommend", user_id="bu0", n=5).json()["items"]
    assert first[0] == {"item_id": "b5", "score": first[0]["score"],
                        "reasons": first[0]["reasons"]}
    assert first[0]["reasons"][0] == {"code": "promoted"}
    cached = client.get(key)
    assert cached is not None and "b5" in b.items("/recommend", user_id="bu0", n=5)

    def put(text: str, worker=a):  # noqa: ANN001, ANN202
        return worker.http.put("/admin/rules", content=text, headers=KEY)

    # A pin moved from b5 to b6: the next request of the worker asked shows it; the
    # other worker within its reload interval; the cached list is not made again.
    answer = put('[pin]\nitems = ["b6"]\n')
    assert answer.status_code == 200, answer.text
    assert answer.json()["pins"] == 1
    items = a.get("/recommend", user_id="bu0", n=5).json()["items"]
    assert items[0]["item_id"] == "b6" and items[0]["reasons"][0] == {"code": "promoted"}
    assert all(i["reasons"][0] != {"code": "promoted"} for i in items[1:])
    until(lambda: b.items("/recommend", user_id="bu0", n=5)[0] == "b6")
    assert client.get(key) == cached
    assert b.http.get("/admin/rules", headers=KEY).text == '[pin]\nitems = ["b6"]\n'

    # No pins; an exclusion, then lifted: all act on the same cached list.
    assert put("").status_code == 200
    plain = a.items("/recommend", user_id="bu0", n=6)
    assert put(f'[exclude]\nitems = ["{plain[0]}"]\n').status_code == 200
    assert a.items("/recommend", user_id="bu0", n=5) == plain[1:]
    assert put("").status_code == 200
    assert a.items("/recommend", user_id="bu0", n=6) == plain
    assert client.get(key) == cached

    # A boost changes which items are candidates: the list is ranked again under it.
    assert put('[[boost]]\ncategory = "Kitchen"\namount = 50.0\n').status_code == 200
    boosted = a.items("/recommend", user_id="bu0", n=4)
    assert all(i.startswith("a") for i in boosted)  # kitchen items for a gardener
    assert unpack(client.get(key)).tag != unpack(cached).tag


def test_bad_rules_are_refused_with_the_problem_and_nothing_changes(two_workers) -> None:
    (a, _), rules = two_workers
    before = rules.read_text()
    for text, problem in (('[pin]\nitems = "b6"\n', "pin.items"),
                          ("[[boost]]\namount = 2\n", "exactly one of"),
                          ("[variants.x]\nshare = 1\nweights = { nope = 1.0 }\n", "nope"),
                          ("[pin\n", "unreadable")):
        answer = a.http.put("/admin/rules", content=text, headers=KEY)
        assert answer.status_code == 422 and problem in answer.text, answer.text
    assert a.http.put("/admin/rules", content="").status_code == 401  # operators only
    assert rules.read_text() == before
    assert a.items("/recommend", user_id="bu0", n=3)[0] == "b5"
