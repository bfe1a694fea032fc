"""A Redis Cluster as the cache (a real one: three `redis-server` nodes on this machine):
a shopper's keys share a slot; the jobs write across every node; two service processes
on one cluster give the same answers and share invalidations and forgets."""

from __future__ import annotations

from pathlib import Path

from redis.cluster import key_slot

from recsvc.cli import main
from recsvc.core.artifacts import current_version
from recsvc.stores.keys import fresh_key, list_key, shown_key
from tests.test_service import KEY, start_service, train_planted


def test_a_shoppers_keys_share_a_slot() -> None:
    for user in ("bu0", "U123456", "9f86d081884c7d659a2feaa0c55ad015", "a}b"):
        slots = {key_slot(k.encode()) for k in (
            list_key("ns", "v1", "default", user), list_key("ns", "v2", "trial", user),
            fresh_key("ns", user), shown_key("ns", user))}
        assert len(slots) == 1, user
    # ... and shoppers spread over the slots.
    assert len({key_slot(fresh_key("ns", f"U{i}").encode()) for i in range(200)}) > 150


def test_the_service_and_jobs_on_a_cluster(tmp_path: Path, redis_cluster) -> None:
    client = redis_cluster.client()
    client.flushall()
    store, _ = train_planted(tmp_path)
    root = tmp_path / "m"
    assert main(["warm-cache", "--model-root", str(root), "--redis-url", redis_cluster.url,
                 "--users", "all", "--processes", "1"]) == 0
    version = current_version(root)
    keys = [list_key("recsvc", version, "default", f"{g}u{u}") for g in "ab" for u in range(30)
            if f"{g}u{u}" != "bu1"]  # bu1 refused consent: never warmed
    assert all(client.exists(k) for k in keys)
    nodes = {client.get_node_from_key(k).port for k in keys}
    assert len(nodes) == 3  # written across every node
    one, two = (start_service(tmp_path, store, redis_url=redis_cluster.url,
                              impressions=False) for _ in range(2))
    try:
        first = one.items("/recommend", user_id="bu0", n=4)
        assert two.items("/recommend", user_id="bu0", n=4) == first
        # An event through one invalidates what both serve.
        posted = two.http.post("/events", json=[{"user_id": "bu0", "item_id": i,
                                                 "event_type": "purchase"} for i in first])
        assert posted.json()["accepted"] == 4
        assert not client.exists(list_key("recsvc", version, "default", "bu0"))
        assert client.llen(fresh_key("recsvc", "bu0")) == 4
        after = one.items("/recommend", user_id="bu0", n=4)
        assert not set(after) & set(first)  # bought: not recommended again
        assert two.items("/recommend", user_id="bu0", n=4) == after
        # Pages remembered on the cluster; a forget through one deletes every key.
        one.items("/recommend", user_id="au0", n=3, page=1)
        receipt = two.http.delete("/users/au0", headers=KEY).json()
        assert "error" not in receipt["removed_now"]
        assert not [k for k in client.scan_iter(match="*{au0}*")]
    finally:
        for svc in (one, two):
            svc.http.close()
            svc.server.stop()
