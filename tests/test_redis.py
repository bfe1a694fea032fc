"""The service against a real Redis (a private server on a free port): the top-N cache,
invalidation by events, warm-cache, and surviving Redis going away."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import redis

from recsvc.cli import main
from recsvc.core.artifacts import current_version
from recsvc.core.model import load_model
from recsvc.core.ranking.packed import ListRenderer, pack_batch, unpack
from tests.conftest import free_port
from tests.test_service import KEY, start_service, train_planted


def rendered(root: Path, raw: bytes) -> list[dict]:
    packed = unpack(raw)
    assert packed is not None
    return ListRenderer(load_model(root)).items(packed)


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def redis_service(tmp_path: Path, redis_server, redis_client):
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store, redis_url=redis_server.url, breaker_reset_s=0.3,
                        redis_timeout_ms=200)
    yield svc
    svc.http.close()
    svc.server.stop()


def test_lists_are_cached_in_redis_under_versioned_keys(redis_service, redis_client) -> None:
    svc = redis_service
    version = current_version(svc.root)
    first = svc.get("/recommend", user_id="bu0", n=4).json()
    key = f"recsvc:list:{version}:default:{{bu0}}"
    raw = redis_client.get(key)
    cached = rendered(svc.root, raw)
    assert cached[:4] == first["items"]
    assert 0 < redis_client.ttl(key) <= 86_400
    # A hit is served from Redis: store another list and see it come back.
    other = unpack(raw)
    shifted = [pack_batch(other.items[None, 1:], other.scores[None, 1:],
                          other.codes[None, 1:], other.anchors[None, 1:],
                          np.array([len(other) - 1]), tag)[0] for tag in (other.tag, 12345)]
    redis_client.set(key, shifted[0])
    assert svc.get("/recommend", user_id="bu0", n=3).json()["items"] == cached[1:4]
    # One made under other ranking rules (boosts, weights: another tag) is made again.
    redis_client.set(key, shifted[1])
    assert svc.get("/recommend", user_id="bu0", n=4).json()["items"] == cached[:4]
    assert unpack(redis_client.get(key)).tag == other.tag
    # A foreign value under the key is ignored, not served and not an error.
    redis_client.set(key, b"garbage")
    assert svc.get("/recommend", user_id="bu0", n=4).json()["items"] == cached[:4]
    assert svc.get("/readyz").json()["cache"] == "ok"


def test_events_invalidate_the_users_list(redis_service, redis_client) -> None:
    svc = redis_service
    version = current_version(svc.root)
    svc.get("/recommend", user_id="bu0")
    key = f"recsvc:list:{version}:default:{{bu0}}"
    assert redis_client.exists(key)
    svc.http.post("/events", json=[{"user_id": "bu0", "item_id": f"a{j}",
                                    "event_type": "purchase"} for j in range(6)])
    assert not redis_client.exists(key)
    assert redis_client.llen("recsvc:fresh:{bu0}") == 6
    assert "a" in {i[0] for i in svc.items("/recommend", user_id="bu0", n=4)}


def test_warm_cache_writes_what_the_service_would_compute(redis_service, redis_client,
                                                          capsys) -> None:
    svc = redis_service
    url = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://127.0.0.1:{url['port']}/0"
    code = main(["warm-cache", "--model-root", str(svc.root), "--redis-url", redis_url,
                 "--users", "all"])
    assert code == 0
    assert "warmed 59 lists" in capsys.readouterr().out  # 60 users, bu1 opted out
    version = current_version(svc.root)
    key = f"recsvc:list:{version}:default:{{au3}}"
    warmed = rendered(svc.root, redis_client.get(key))
    served = svc.get("/recommend", user_id="au3", n=10).json()["items"]
    redis_client.delete(key)  # now the service computes the list itself
    computed = svc.get("/recommend", user_id="au3", n=10).json()["items"]
    assert served == computed
    assert warmed[:10] == computed
    assert not redis_client.exists(f"recsvc:list:{version}:default:{{bu1}}")


def test_bulk_writer_sets_every_list_with_its_ttl_and_survives_a_script_flush(
        redis_server, redis_client) -> None:
    from recsvc.stores.cache import open_bulk_writer
    from recsvc.stores.redis_cache import SET_MANY_KEYS

    writer = open_bulk_writer(redis_server.url)
    count = SET_MANY_KEYS + 7  # two commands, the second one short
    keys = [f"t:list:{i}".encode() for i in range(count)]
    values = [bytes([i % 256]) * (1 + i % 3000) for i in range(count)]  # some past 6 kB
    writer.set_many(keys, values, 600)
    assert redis_client.mget(keys) == values
    assert 590 <= redis_client.ttl(keys[-1]) <= 600
    redis_client.script_flush()  # as after a Redis restart: the script must be loaded again
    writer.set_many(keys[:3], [b"x", b"y", b"z"], 600)
    assert redis_client.mget(keys[:3]) == [b"x", b"y", b"z"]
    redis_client.rpush("t:fresh:U7", b"x")
    assert writer.users_with_fresh("t") == {"U7"}
    writer.close()


def test_caches_open_from_their_urls(redis_server) -> None:
    from recsvc.stores.cache import open_bulk_writer, open_cache
    from recsvc.stores.local_cache import LocalCache
    from recsvc.stores.redis_cache import RedisCache

    assert isinstance(open_cache(None), LocalCache)
    assert isinstance(open_cache("memory://"), LocalCache)
    assert isinstance(open_cache(redis_server.url), RedisCache)
    with pytest.raises(ValueError, match="unknown scheme"):
        open_cache("memcached://127.0.0.1")
    with pytest.raises(ValueError, match="only fill a shared cache"):
        open_bulk_writer("memory://")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectionError, match="cannot reach Redis"):
        open_bulk_writer(dead, timeout_s=1)


def test_redis_down_degrades_then_recovers(redis_service, redis_server, redis_client) -> None:
    svc = redis_service
    expected = svc.items("/recommend", user_id="au2", n=5)
    redis_server.stop()
    try:
        for _ in range(5):
            t0 = time.perf_counter()
            assert svc.items("/recommend", user_id="au2", n=5) == expected
            assert time.perf_counter() - t0 < 2.0
        assert svc.get("/readyz").json()["status"] == "degraded"
        assert svc.http.post("/events", json={"user_id": "au2", "item_id": "a1",
                                              "event_type": "view"}).status_code == 200
    finally:
        redis_server.start()
    deadline = time.monotonic() + 10
    while svc.get("/readyz").json()["status"] != "ready":
        assert time.monotonic() < deadline, "did not recover"
        svc.get("/recommend", user_id="au2")
        time.sleep(0.1)
    svc.get("/recommend", user_id="au4")
    assert redis.Redis.from_url(redis_server.url).exists(
        f"recsvc:list:{current_version(svc.root)}:default:{{au4}}")
    assert svc.http.patch("/items/a1", json={"in_stock": False}, headers=KEY).status_code == 200


def test_event_ids_are_claimed_in_redis_so_every_worker_sees_a_retry(
        redis_service, redis_server, redis_client, tmp_path: Path) -> None:
    event = {"user_id": "au1", "item_id": "a1", "event_type": "view", "event_id": "r-1"}
    assert redis_service.http.post("/events", json=event).json() == {"accepted": 1,
                                                                    "duplicates": 0, "ignored": 0}
    assert 0 < redis_client.ttl("recsvc:event:r-1") <= 86_400
    # Another worker (a second server on the same model, state and Redis): the retry
    # landing there is a duplicate too.
    other = start_service(tmp_path, redis_service.store, redis_url=redis_server.url)
    try:
        assert other.http.post("/events", json=event).json() == {"accepted": 0,
                                                                "duplicates": 1, "ignored": 0}
    finally:
        other.http.close()
        other.server.stop()
    lines = [line for f in (tmp_path / "state" / "events").iterdir()
             for line in f.read_text().splitlines()]
    assert len(lines) == 1
