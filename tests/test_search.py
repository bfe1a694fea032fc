"""Search queries as a signal: matched to items by the content model's saved vocabulary,
live (the shopper's next list) and in training; the query text is kept nowhere, and no
reason names an item the shopper only searched for."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from recsvc.core.model import load_model
from tests.conftest import T0, planted_store, quick_config
from tests.test_service import QUIET, start_service, train_planted
from training.pipeline import train


def logged(state_dir: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((state_dir / "events").glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def test_a_search_feeds_the_next_list_and_keeps_no_query(tmp_path: Path) -> None:
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store)
    try:
        # A newcomer's first search is all we know of them: what is like its match (the
        # kitchen) comes first.
        answer = svc.http.post("/events", json=[{"user_id": "newbie", "event_type": "search",
                                                 "query": "Deluxe!", "event_id": "s1"}])
        assert answer.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
        rows = [r for r in logged(svc.state_dir) if r["event_type"] == "search"]
        assert [(r["item_id"], r["value"]) for r in rows] == [("a_new", 1.0)]
        assert "eluxe" not in json.dumps(logged(svc.state_dir))  # the query is not kept
        after = svc.get("/recommend", user_id="newbie", n=6).json()["items"]
        assert [i["item_id"][0] for i in after[:5]] == ["a"] * 5
        # For a shopper with a long history it is one more, light, signal: the match
        # gains on the rest.
        before = {i["item_id"]: i["score"]
                  for i in svc.get("/recommend", user_id="bu0", n=20).json()["items"]}
        svc.http.post("/events", json=[{"user_id": "bu0", "event_type": "search",
                                        "query": "deluxe"}])
        scores = {i["item_id"]: i["score"]
                  for i in svc.get("/recommend", user_id="bu0", n=20).json()["items"]}
        gain = {i: scores[i] - before[i] for i in scores}
        assert gain["a_new"] == max(gain.values()) and gain["a_new"] > 0
        for item in after:  # no reason names, or calls seen, what they only searched for
            assert all(r.get("item_id") != "a_new" for r in item["reasons"]), item
            if item["item_id"] == "a_new":
                assert {"code": "seen_before"} not in item["reasons"]
        # A broader query feeds its best matches, each by how well it matched.
        answer = svc.http.post("/events", json=[{"user_id": "au0", "event_type": "search",
                                                 "query": "garden rake"}])
        assert answer.json()["accepted"] == 5
        rows = [r for r in logged(svc.state_dir) if r["user_id"] == "au0"]
        assert {r["item_id"][0] for r in rows} == {"b"} and max(r["value"] for r in rows) == 1
        # A retry of the same search is recorded once; a query nothing matches is
        # acknowledged and ignored.
        again = svc.http.post("/events", json=[
            {"user_id": "newbie", "event_type": "search", "query": "deluxe", "event_id": "s1"},
            {"user_id": "newbie", "event_type": "search", "query": "zebra"}]).json()
        assert again == {"accepted": 0, "duplicates": 1, "ignored": 1}
        for bad, field in (({"user_id": "au0", "event_type": "search"}, "query"),
                           ({"user_id": "au0", "event_type": "view"}, "item_id"),
                           ({"user_id": "au0", "event_type": "view", "item_id": "a1",
                             "query": "pan"}, "query")):
            response = svc.http.post("/events", json=[bad])
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["loc"] == ["body", 0, field]
    finally:
        svc.http.close()
        svc.server.stop()


def test_training_matches_logged_queries(tmp_path: Path) -> None:
    store = planted_store(tmp_path)
    with open(store["interactions"], newline="") as f:
        rows = list(csv.DictReader(f))
    header = [*rows[0].keys(), "query"]
    extra = [{"user_id": "au1", "item_id": "", "event_type": "search",
              "timestamp": str(T0 + 300 * 3600), "value": "", "query": "rake shovel"},
             {"user_id": "au2", "item_id": "", "event_type": "search",
              "timestamp": str(T0 + 300 * 3600), "value": "", "query": "unicorn"}]
    with open(store["interactions"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows([{**r, "query": ""} for r in rows] + extra)
    result = train(quick_config(tmp_path / "m", **store), QUIET)
    report = result.manifest.data_quality
    assert report["searches"] == 2 and report["searches_unmatched"] == 1
    assert report["search_rows"] == 5
    model = load_model(tmp_path / "m")
    au1 = int(model.user_index(["au1"])[0])
    searched = {str(model.item_ids[i]) for i in model.search_only(au1)}
    assert len(searched) == 5 and {i[0] for i in searched} == {"b"}
    assert set(model.user_items[au1].indices) >= set(model.item_index(sorted(searched)))
    # "Next after X" never names an item only searched for.
    assert not set(model.user_recent[au1].tolist()) & set(model.item_index(sorted(searched)))
