"""The service through real HTTP (uvicorn on a free port): every endpoint and option,
cold start, reasons, events, the live catalog, reload and rollback, and errors."""

from __future__ import annotations

import concurrent.futures
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from recsvc.core.artifacts import current_version
from recsvc.core.model import load_model
from recsvc.service.app import create_app
from recsvc.settings import Settings
from tests.conftest import (
    LiveServer,
    free_port,
    planted_seen,
    planted_store,
    quick_config,
    write_csv,
)
from training.pipeline import train
from training.progress import Progress

KEY = {"X-API-Key": "s3cret"}
QUIET = Progress(quiet=True)


@dataclass
class Service:
    url: str
    http: httpx.Client
    root: Path
    state_dir: Path
    store: dict[str, Path]
    server: LiveServer

    def get(self, path: str, **params) -> httpx.Response:  # noqa: ANN003
        return self.http.get(path, params=params)

    def items(self, path: str, **params) -> list[str]:  # noqa: ANN003
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return [item["item_id"] for item in response.json()["items"]]


def train_planted(tmp_path: Path, **overrides) -> tuple[dict[str, Path], str]:  # noqa: ANN003
    store = planted_store(tmp_path)
    users = [{"user_id": f"{g}u{u}", "segment": "gold" if g == "a" else "silver",
              "consent": "no" if f"{g}u{u}" == "bu1" else "yes"}
             for g in "ab" for u in range(30)]
    store["users"] = write_csv(tmp_path / "users.csv", users)
    config = quick_config(tmp_path / "m", **store)
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return store, train(config, QUIET).version


def start_service(tmp_path: Path, store: dict[str, Path], **settings) -> Service:  # noqa: ANN003
    config = Settings(**{"model_root": tmp_path / "m", "state_dir": tmp_path / "state",
                         "api_key": "s3cret", "reload_interval_s": 0.2, **settings})
    server = LiveServer(create_app(config), free_port())
    return Service(server.url, httpx.Client(base_url=server.url, timeout=30), tmp_path / "m",
                   tmp_path / "state", store, server)


@pytest.fixture
def service(tmp_path: Path):
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store)
    yield svc
    svc.http.close()
    svc.server.stop()


def group_of(items: list[str]) -> set[str]:
    return {i[0] for i in items}


def test_recommend_personal_list_with_reasons_and_cache(service: Service) -> None:
    body = service.get("/recommend", user_id="bu0", n=4).json()
    assert set(body) == {"user_id", "model_version", "variant", "recommendation_id", "items"}
    assert body["user_id"] == "bu0" and body["variant"] == "default"
    assert body["model_version"] == current_version(service.root)
    expected = {f"b{j}" for j in range(10)} - set(planted_seen("bu0"))
    assert {i["item_id"] for i in body["items"]} == expected  # the planted answer
    for item in body["items"]:
        assert item["reasons"], item
        codes = {r["code"] for r in item["reasons"]}
        assert codes <= {"because_you_bought", "next_after", "popular_in", "trending",
                         "popular"}
        anchor = [r for r in item["reasons"] if r["code"] in ("because_you_bought",
                                                              "next_after")]
        assert all(r["item_id"] in planted_seen("bu0") for r in anchor)
    assert any(r["code"] == "because_you_bought" for i in body["items"] for r in i["reasons"])
    # The second call is a cache hit with the same list and a new recommendation id.
    hits = cache_count(service, "hit")
    again = service.get("/recommend", user_id="bu0", n=4).json()
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in body["items"]]
    assert again["recommendation_id"] != body["recommendation_id"]
    assert cache_count(service, "hit") == hits + 1
    assert len(service.items("/recommend", user_id="bu0", n=2)) == 2


def cache_count(service: Service, result: str) -> float:
    text = service.http.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(f'recsvc_cache_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_recommend_options(service: Service) -> None:
    seen = planted_seen("au3")
    assert group_of(service.items("/recommend", user_id="au3", n=4)) == {"a"}
    # exclude_seen=false lets bought items back in; the default (learned) excludes them.
    assert not set(service.items("/recommend", user_id="au3", n=10)) & set(seen)
    assert set(service.items("/recommend", user_id="au3", n=20, exclude_seen="false")) & set(seen)
    # Category, price range and exclusions.
    garden = service.items("/recommend", user_id="au3", n=5, category="Garden")
    assert garden and group_of(garden) == {"b"}
    unknown = service.get("/recommend", user_id="au3", category="Nowhere")
    assert unknown.status_code == 404 and "unknown category" in unknown.json()["detail"]
    cheap = service.items("/recommend", user_id="au3", n=10, max_price=22)
    assert cheap and all(int(i[1:].replace("_new", "5")) <= 2 for i in cheap)
    top = service.items("/recommend", user_id="au3", n=2)
    rest = service.items("/recommend", user_id="au3", n=2, exclude=",".join(top))
    assert not set(rest) & set(top)
    rest2 = service.http.get("/recommend", params=[("user_id", "au3"), ("n", 2),
                                                   ("exclude", top[0]), ("exclude", top[1])])
    assert not {i["item_id"] for i in rest2.json()["items"]} & set(top)


def test_cold_start_sessions_segments_and_consent(service: Service) -> None:
    # A stranger with nothing known: popular and trending items, never an empty list.
    body = service.get("/recommend", user_id="nobody", n=5).json()
    assert len(body["items"]) == 5
    assert all(r["code"] in {"popular_in", "popular", "trending", "new_arrival"}
               for i in body["items"] for r in i["reasons"])
    # An anonymous session that viewed garden items gets garden items, "similar to" them.
    session = service.get("/recommend", n=4, recent_items="b0,b1,b2").json()
    assert session["user_id"] is None
    assert group_of([i["item_id"] for i in session["items"]]) == {"b"}
    assert any(r["code"] == "similar_to" and r["item_id"] in {"b0", "b1", "b2"}
               for i in session["items"] for r in i["reasons"])
    # A stranger of a known segment: that segment's popular items first.
    gold = service.items("/recommend", user_id="stranger", n=3, segment="gold")
    silver = service.items("/recommend", user_id="stranger", n=3, segment="silver")
    assert group_of(gold) == {"a"} and group_of(silver) == {"b"}
    # bu1 refused consent: never personalized, the same list as any stranger.
    assert service.items("/recommend", user_id="bu1", n=5) == service.items(
        "/recommend", user_id="nobody-else", n=5)


def test_similar_and_popular(service: Service) -> None:
    body = service.get("/similar/a3", n=5).json()
    assert body["item_id"] == "a3" and "a3" not in [i["item_id"] for i in body["items"]]
    assert group_of([i["item_id"] for i in body["items"]]) == {"a"}
    assert all(r["item_id"] == "a3" for i in body["items"] for r in i["reasons"])
    # A brand-new item (no interactions) gets neighbours by its attributes.
    new = service.items("/similar/a_new", n=5)
    assert group_of(new) == {"a"}
    assert service.get("/similar/nope").status_code == 404
    assert service.get("/similar/a3", n=101).status_code == 422
    popular = service.get("/popular", n=3, category="Garden > Tools").json()
    assert len(popular["popular"]) == 3 and group_of(
        [i["item_id"] for i in popular["popular"] + popular["trending"]]) == {"b"}
    assert group_of([i["item_id"] for i in service.get("/popular", n=3, segment="gold")
                     .json()["popular"]]) == {"a"}
    # Known answer: every listed item in the order of a full sort of the stored scores
    # (log1p of overall popularity and of the trend; ties to the lower item number).
    model = load_model(service.root)
    body = service.get("/popular", n=100).json()
    for kind, stored in (("popular", model.components["popularity"].overall),
                         ("trending", model.components["trending"].trend)):
        scores = np.log1p(np.asarray(stored, dtype=np.float32))
        listed = np.flatnonzero(model.item_in_stock)
        order = listed[np.lexsort((listed, -scores[listed]))][:100]
        assert [i["item_id"] for i in body[kind]] == model.item_ids[order].tolist()
        assert [i["score"] for i in body[kind]] == [round(float(s), 5) for s in scores[order]]


def test_events_are_logged_and_change_the_next_list(service: Service) -> None:
    before = service.items("/recommend", user_id="bu0", n=4)
    assert group_of(before) == {"b"}
    # bu0 suddenly buys kitchen items: the next list (no waiting for training) follows.
    events = [{"user_id": "bu0", "item_id": f"a{j}", "event_type": "purchase"}
              for j in range(6)]
    response = service.http.post("/events", json=events)
    assert response.status_code == 200 and response.json() == {"accepted": 6,
                                                                "duplicates": 0, "ignored": 0}
    after = service.items("/recommend", user_id="bu0", n=4)
    assert "a" in group_of(after), after
    one = service.http.post("/events", json={"user_id": "zz", "item_id": "b1",
                                             "event_type": "add-to-cart", "value": 2,
                                             "recommendation_id": "abc"})
    assert one.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    lines = [json.loads(line) for f in sorted((service.state_dir / "events").iterdir())
             for line in f.read_text().splitlines()]
    assert len(lines) == 7
    assert lines[-1]["event_type"] == "add_to_cart" and lines[-1]["recommendation_id"] == "abc"
    assert {"user_id", "item_id", "event_type", "timestamp"} <= set(lines[0])
    # A stranger's session built from events alone.
    assert group_of(service.items("/recommend", user_id="zz", n=3)) == {"b"}


@pytest.mark.parametrize("body, status", [
    ({"user_id": "u", "item_id": "a1", "event_type": "teleport"}, 422),
    ([], 422),
    ({"user_id": "", "item_id": "a1", "event_type": "view"}, 422),
    ({"user_id": "u", "item_id": "a1", "event_type": "view", "extra": 1}, 422),
    ({"user_id": "u", "item_id": "a1", "event_type": "view", "timestamp": "yesterday"}, 422),
    ([{"user_id": "u", "item_id": "a1", "event_type": "view"}] * 1001, 413),
])
def test_bad_events_are_refused_with_a_reason(service: Service, body, status) -> None:
    response = service.http.post("/events", json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert not (service.state_dir / "events").exists()  # nothing half-recorded


@pytest.mark.parametrize("changes, field, why", [
    ({"timestamp": "2030-01-01T00:00:00Z"}, "timestamp", "ahead of the clock"),
    ({"timestamp": "9999-12-31T23:59:59Z"}, "timestamp", "ahead of the clock"),
    ({"timestamp": 1e20}, "timestamp", "epoch seconds or epoch milliseconds"),
    ({"timestamp": -5}, "timestamp", "epoch seconds or epoch milliseconds"),
    ({"event_type": "rating", "value": 1e308}, "value", "rating scale 0..5"),
    ({"event_type": "rating"}, "value", "a rating needs a value"),
    ({"event_type": "purchase", "value": 1e9}, "value", "quantity"),
])
def test_events_that_would_poison_training_are_refused_naming_the_field(
        service: Service, changes, field, why) -> None:
    """The API refuses what the trainer would drop, by the same rules
    (`EventWeights.checks`, saved with the model), naming the field."""
    event = {"user_id": "u", "item_id": "a1", "event_type": "view", **changes}
    response = service.http.post("/events", json=[
        {"user_id": "u", "item_id": "a1", "event_type": "view"}, event])
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", 1, field], problem
    assert problem["msg"].startswith(f"event 1: {field} ") and why in problem["msg"]
    assert not (service.state_dir / "events").exists()  # the good one is not kept either


def test_non_finite_numbers_are_refused(service: Service) -> None:
    """JSON has no NaN or Infinity, but Python's parser reads them: refused all the same."""
    for body in (b'{"user_id":"u","item_id":"a1","event_type":"view","timestamp":NaN}',
                 b'{"user_id":"u","item_id":"a1","event_type":"view","value":Infinity}'):
        response = service.http.post("/events", content=body,
                                     headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
    assert not (service.state_dir / "events").exists()


def test_epoch_milliseconds_are_recorded_as_seconds(service: Service) -> None:
    now_ms = time.time() * 1000
    response = service.http.post("/events", json={"user_id": "u", "item_id": "a1",
                                                  "event_type": "view", "timestamp": now_ms})
    assert response.status_code == 200
    (line,) = [json.loads(line) for f in (service.state_dir / "events").iterdir()
               for line in f.read_text().splitlines()]
    assert abs(line["timestamp"] - now_ms / 1000) < 1e-3


def test_malformed_and_oversized_bodies(service: Service) -> None:
    bad = service.http.post("/events", content=b"{not json",
                            headers={"content-type": "application/json"})
    assert bad.status_code == 422
    huge = service.http.post("/events", content=b"[" + b" " * (2 * 1024 * 1024) + b"]",
                             headers={"content-type": "application/json"})
    assert huge.status_code == 413
    # Streamed without a declared length: counted as it arrives, and still a 413.
    chunks = (b"[" if i == 0 else b" " * 65536 for i in range(40))
    streamed = service.http.post("/events", content=chunks,
                                 headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "larger than" in streamed.json()["detail"]


def test_catalog_updates_need_the_key_and_apply_at_once(service: Service) -> None:
    top = service.items("/recommend", user_id="bu0", n=4)  # now cached
    gone = top[0]
    assert service.http.patch(f"/items/{gone}", json={"in_stock": False}).status_code == 401
    assert service.http.patch(f"/items/{gone}", json={"in_stock": False},
                              headers={"X-API-Key": "wrong"}).status_code == 401
    response = service.http.patch(f"/items/{gone}", json={"in_stock": False}, headers=KEY)
    assert response.status_code == 200 and response.json() == {"item_id": gone,
                                                               "in_stock": False}
    assert gone not in service.items("/recommend", user_id="bu0", n=4)  # cached list too
    assert gone not in service.items("/similar/b9" if gone != "b9" else "/similar/b8", n=20)
    popular = service.get("/popular", n=30).json()
    assert gone not in [i["item_id"] for i in popular["popular"] + popular["trending"]]
    # Back in stock, then delisted with PUT (which replaces the whole entry).
    service.http.patch(f"/items/{gone}", json={"in_stock": True}, headers=KEY)
    assert gone in service.items("/recommend", user_id="bu0", n=4)
    put = service.http.put(f"/items/{gone}", json={"delisted": True},
                           headers={"Authorization": "Bearer s3cret"})
    assert put.json() == {"item_id": gone, "delisted": True}
    assert gone not in service.items("/recommend", user_id="bu0", n=10)
    assert service.http.patch("/items/nope", json={"in_stock": False},
                              headers=KEY).status_code == 404
    assert service.http.patch(f"/items/{gone}", json={"price": -1},
                              headers=KEY).status_code == 422


def test_operations_endpoints(service: Service) -> None:
    assert service.get("/healthz").json() == {"status": "alive"}
    ready = service.get("/readyz").json()
    assert ready == {"status": "ready", "model_version": current_version(service.root),
                     "cache": "embedded", "degraded": [], "ranking": "exact"}
    model = service.get("/model").json()
    assert model["version"] == current_version(service.root)
    assert {"cf", "popularity"} <= set(model["algorithms"]) and "trained_at" in model
    service.get("/recommend", user_id="au1")
    metrics = service.get("/metrics").text
    assert 'recsvc_request_seconds_bucket{endpoint="/recommend"' in metrics
    assert f'recsvc_model_info{{version="{model["version"]}"}} 1.0' in metrics
    assert 'recsvc_recommendations_total{variant="default"}' in metrics
    assert service.get("/docs").status_code == 200
    assert "/recommend" in service.get("/openapi.json").json()["paths"]
    assert service.http.post("/admin/reload").status_code == 401


def test_new_model_is_picked_up_and_rollback_works(service: Service, tmp_path: Path) -> None:
    first = current_version(service.root)
    config = quick_config(service.root, **service.store)
    second = train(config, QUIET).version
    deadline = time.monotonic() + 10
    while service.get("/model").json()["version"] != second:
        assert time.monotonic() < deadline, "the new model was not picked up"
        time.sleep(0.1)
    assert service.get("/recommend", user_id="au1").json()["model_version"] == second
    # Roll back to the first: `current` moves, the service serves it.
    response = service.http.post("/admin/rollback", params={"version": first}, headers=KEY)
    assert response.json() == {"model_version": first}
    assert current_version(service.root) == first
    assert service.get("/recommend", user_id="au1").json()["model_version"] == first
    assert service.http.post("/admin/rollback", params={"version": "nope"},
                             headers=KEY).status_code == 404
    assert service.http.post("/admin/reload", headers=KEY).json() == {"model_version": first}


def test_swapping_models_drops_no_request(service: Service) -> None:
    versions = [current_version(service.root)]
    config = quick_config(service.root, **service.store)
    versions.append(train(config, QUIET).version)
    statuses: list[int] = []

    def hammer() -> None:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            for i in range(60):
                statuses.append(http.get("/recommend", params={"user_id": f"au{i % 30}",
                                                               "n": 5}).status_code)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        for i in range(6):
            target = versions[i % 2]
            assert service.http.post("/admin/rollback", params={"version": target},
                                     headers=KEY).status_code == 200
        for f in futures:
            f.result()
    assert statuses and set(statuses) == {200}


@pytest.mark.parametrize("params", [
    {"user_id": "au1", "n": "ten"}, {"user_id": "au1", "n": 0}, {"user_id": "au1", "n": 101},
    {"user_id": "au1", "min_price": -5},
    {"user_id": "au1", "exclude_seen": "maybe"}, {"user_id": ""}, {"user_id": "x" * 300},
])
def test_bad_parameters_get_422_with_a_message(service: Service, params) -> None:
    response = service.get("/recommend", **params)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_an_empty_price_range_lists_nothing(service: Service) -> None:
    """A well-formed query whose range holds no item: an empty list, not an error."""
    response = service.get("/recommend", user_id="au1", min_price=9, max_price=1)
    assert response.status_code == 200 and response.json()["items"] == []


@pytest.mark.parametrize("params", [
    {"user_id": "é\u0000💥"}, {"user_id": "a b", "recent_items": ",,,"},
    {"user_id": "au1", "category": "", "segment": "nope", "region": "?"},
    {"user_id": "au1", "exclude": "a1,a1,zz"}, {"recent_items": "zz"},
    {"user_id": "au1", "min_price": 1e308}, {"user_id": "au1", "category": "kitchen"},
])
def test_odd_inputs_never_produce_a_500(service: Service, params) -> None:
    response = service.get("/recommend", **params)
    assert response.status_code in (200, 422), response.text
    for path in ("/similar/%00", "/similar/" + "x" * 300, "/popular?n=-1",
                 "/popular?segment=%FF", "/items/a1"):
        assert service.http.get(path).status_code < 500


def test_plain_requests_take_the_fast_path_with_the_same_answer(service: Service) -> None:
    fast = service.get("/recommend", user_id="bu0", n=4).json()
    routed = service.http.get("/recommend?user_id=bu0&n=4&exclude=").json()  # via FastAPI
    assert fast["items"] == routed["items"]
    assert fast["model_version"] == routed["model_version"]
    assert service.http.get("/recommend?user_id=bu0&n=4&n=5").status_code == 200
    assert service.http.get("/recommend?user_id=%ZZ").status_code in (200, 422)
    assert service.http.post("/recommend?user_id=bu0").status_code == 405


def test_a_retried_event_with_its_id_is_recorded_once(service: Service) -> None:
    event = {"user_id": "u", "item_id": "a1", "event_type": "view", "event_id": "e-1"}
    first = service.http.post("/events", json=[event, {**event, "event_id": "e-2"}])
    assert first.json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    retry = service.http.post("/events", json=[event, {**event, "event_id": "e-3"}])
    assert retry.json() == {"accepted": 1, "duplicates": 1, "ignored": 0}
    repeated = service.http.post("/events", json=[{**event, "event_id": "e-4"}] * 2)
    assert repeated.json() == {"accepted": 1, "duplicates": 1, "ignored": 0}
    lines = [json.loads(line) for f in (service.state_dir / "events").iterdir()
             for line in f.read_text().splitlines()]
    assert sorted(r["event_id"] for r in lines) == ["e-1", "e-2", "e-3", "e-4"]


def test_an_unwritable_events_log_answers_503_and_keeps_nothing(service: Service) -> None:
    service.state_dir.mkdir(parents=True, exist_ok=True)
    (service.state_dir / "events").write_text("not a directory")  # the log cannot be made
    event = {"user_id": "u", "item_id": "a1", "event_type": "view", "event_id": "e-9"}
    refused = service.http.post("/events", json=event)
    assert refused.status_code == 503 and "events not recorded" in refused.json()["detail"]
    (service.state_dir / "events").unlink()
    retried = service.http.post("/events", json=event)  # its id was released: recorded now
    assert retried.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}


def test_metrics_say_how_old_the_model_is_and_how_the_nightly_job_went(
        tmp_path: Path) -> None:
    store, version = train_planted(tmp_path)
    runs = tmp_path / "m" / "runs"
    runs.mkdir()
    (runs / "20261130T020000.000000Z.json").write_text(json.dumps(
        {"finished_at": "2026-11-30T02:10:00+00:00", "exit_code": 0}))
    (runs / "20261201T020000.000000Z.json").write_text(json.dumps(
        {"finished_at": "2026-12-01T02:05:00+00:00", "exit_code": 1}))
    svc = start_service(tmp_path, store)
    try:
        def value(name: str) -> float | None:
            for line in svc.http.get("/metrics").text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
            return None

        deadline = time.monotonic() + 30  # read at start, then every 10 s
        while value("recsvc_nightly_last_run_failed") != 1.0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        from datetime import datetime

        def at(iso: str) -> float:
            return datetime.fromisoformat(iso).timestamp()

        assert value("recsvc_nightly_last_success_timestamp_seconds") == at(
            "2026-11-30T02:10:00+00:00")  # the newest run that did its job
        assert value("recsvc_nightly_last_run_timestamp_seconds") == at(
            "2026-12-01T02:05:00+00:00")
        trained = load_model(tmp_path / "m").manifest.created_at
        assert value("recsvc_model_trained_timestamp_seconds") == pytest.approx(
            datetime.fromisoformat(trained).timestamp())
    finally:
        svc.http.close()
        svc.server.stop()
