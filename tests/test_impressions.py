"""Every list served is logged as an impression (off the request path), with the id the
storefront gets, so that what shoppers do next can be attributed to it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from recsvc.stores.impressions import ImpressionLog
from tests.test_service import Service, service  # noqa: F401 - the fixture


def logged(state_dir: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + 30  # the writer flushes every quarter second
    while True:
        lines = [json.loads(line) for f in sorted((state_dir / "impressions").glob("*.jsonl"))
                 for line in f.read_text().splitlines()] if (state_dir / "impressions").exists() \
            else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_every_list_served_is_logged_with_its_id(service: Service) -> None:  # noqa: F811
    computed = service.get("/recommend", user_id="au0", n=4).json()
    cached = service.get("/recommend", user_id="au0", n=3, placement="cart").json()
    anonymous = service.get("/recommend", n=2).json()
    opted_out = service.get("/recommend", user_id="bu1", n=2).json()  # consent: no
    similar = service.get("/similar/a1", n=3, user_id="au0").json()
    popular = service.get("/popular", n=2, placement="home").json()
    lines = logged(service.state_dir, 7)
    assert len(lines) == 7
    by_id: dict[str, list[dict]] = {}
    for line in lines:
        by_id.setdefault(line["recommendation_id"], []).append(line)
    version = computed["model_version"]

    def one(body: dict) -> dict:
        (line,) = by_id[body["recommendation_id"]]
        assert line["model_version"] == version and line["ts"] > 1.7e9
        return line

    first = one(computed)
    assert first["items"] == [i["item_id"] for i in computed["items"]]
    assert (first["user_id"], first["variant"], first["surface"]) == ("au0", "default",
                                                                     "recommend")
    second = one(cached)  # a cache hit is logged the same way
    assert second["surface"] == "cart" and second["items"] == [
        i["item_id"] for i in cached["items"]]
    assert one(anonymous)["user_id"] is None
    assert one(opted_out)["user_id"] is None  # nothing of theirs is recorded
    related = one(similar)
    assert related["surface"] == "similar" and related["user_id"] == "au0"
    assert related["items"] == [i["item_id"] for i in similar["items"]]
    shown = {line["surface"]: line["items"] for line in by_id[popular["recommendation_id"]]}
    assert shown == {"home:popular": [i["item_id"] for i in popular["popular"]],
                     "home:trending": [i["item_id"] for i in popular["trending"]]}
    assert len({computed["recommendation_id"], cached["recommendation_id"]}) == 2


def test_a_full_queue_drops_and_counts_but_never_waits(tmp_path: Path) -> None:
    log = ImpressionLog(tmp_path / "imp", rotate_bytes=1 << 20, capacity=2)
    ids = np.array(["I0", "I1", "I2"])
    assert log.record("r1", "u", "default", "v1", "recommend", np.array([2, 0]), ids)
    assert log.record("r2", None, "default", "v1", "similar", np.array([1]), ids)
    assert not log.record("r3", "u", "default", "v1", "recommend", np.array([0]), ids)
    assert log.dropped == 1
    assert log.flush() == 2
    lines = [json.loads(x) for f in log.files() for x in f.read_text().splitlines()]
    assert [(x["recommendation_id"], x["items"]) for x in lines] == [("r1", ["I2", "I0"]),
                                                                     ("r2", ["I1"])]
    assert log.record("r4", "u", "default", "v1", "recommend", np.array([1]), ids)  # room again
    log.close()  # writes what is queued
    assert sum(len(f.read_text().splitlines()) for f in log.files()) == 3
