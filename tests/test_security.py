"""Who may call what: the storefront's key, shopper tokens that reach one shopper only,
CORS for pages, the limit on failed attempts, reasons kept from callers without
credentials, and bodies over the limit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from recsvc.core.policy.tokens import make_shopper_token, verify_shopper_token
from recsvc.service.auth import AuthThrottle
from recsvc.service.errors import TooManyRequests
from tests.test_service import Service, start_service, train_planted

CLIENT = "client-key-0123456789"
SECRET = "token-secret-0123456789"
ORIGIN = "https://shop.example"


def token(user: str, ttl: float = 600) -> str:
    return make_shopper_token(SECRET.encode(), user, int(time.time() + ttl))


@pytest.fixture
def locked(tmp_path: Path):
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store, client_key=CLIENT, shopper_token_secret=SECRET,
                        cors_origins=[ORIGIN], auth_failures_per_minute=3)
    yield svc
    svc.http.close()
    svc.server.stop()


def reasons(response) -> set[str]:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return {r["code"] for i in response.json()["items"] for r in i["reasons"]}


def test_shopper_tokens_sign_one_user_until_they_expire() -> None:
    secret, now = b"s" * 32, 1_800_000_000
    good = make_shopper_token(secret, "user:42/é", now + 60)
    assert verify_shopper_token(secret, good, now) == ("user:42/é", "")
    assert verify_shopper_token(secret, good, now + 61) == (None, "shopper token expired")
    assert verify_shopper_token(b"t" * 32, good, now)[0] is None
    user, expires, signature = good.split(".")
    forged = make_shopper_token(secret, "other", now + 60).split(".")[0]
    assert verify_shopper_token(secret, f"{forged}.{expires}.{signature}", now)[1] == (
        "shopper token signature does not match")
    later = f"{user}.{now + 10**6}.{signature}"  # a longer life is not signed either
    assert verify_shopper_token(secret, later, now)[0] is None
    for junk in ("", "a.b", "a.b.c", "!!.1.!!", "x" * 2000):
        assert verify_shopper_token(secret, junk, now)[0] is None


def test_storefront_endpoints_need_the_clients_key_or_a_token(locked: Service) -> None:
    http = locked.http
    event = {"user_id": "au0", "item_id": "a1", "event_type": "view"}
    for response in (http.get("/recommend", params={"user_id": "au0"}),
                     http.get("/similar/a1"), http.get("/popular"),
                     http.post("/events", json=event)):
        assert response.status_code == 401 and "credentials" in response.json()["detail"]
    client = {"X-Client-Key": CLIENT}
    assert http.get("/recommend", params={"user_id": "au0"}, headers=client).status_code == 200
    assert http.get("/similar/a1", headers=client).status_code == 200
    assert http.get("/popular", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert http.post("/events", json=event, headers=client).json()["accepted"] == 1


def test_a_shopper_token_reads_and_writes_its_shopper_only(locked: Service) -> None:
    http, mine = locked.http, {"X-Shopper-Token": token("au0")}
    own = http.get("/recommend", params={"user_id": "au0", "n": 4}, headers=mine)
    assert own.status_code == 200 and own.json()["user_id"] == "au0"
    implied = http.get("/recommend", params={"n": 4}, headers=mine)
    assert implied.json()["user_id"] == "au0"
    assert [i["item_id"] for i in implied.json()["items"]] == [
        i["item_id"] for i in own.json()["items"]]
    other = http.get("/recommend", params={"user_id": "au1"}, headers=mine)
    assert other.status_code == 403 and "another user_id" in other.json()["detail"]
    theirs = [{"user_id": "au0", "item_id": "a1", "event_type": "view"},
              {"user_id": "au1", "item_id": "a1", "event_type": "purchase"}]
    refused = http.post("/events", json=theirs, headers=mine)
    assert refused.status_code == 403 and "event 1" in refused.json()["detail"]
    assert not (locked.state_dir / "events").exists()  # none of the batch kept
    assert http.post("/events", json=theirs[0], headers=mine).json()["accepted"] == 1
    assert http.get("/similar/a1", headers=mine).status_code == 200
    expired = http.get("/recommend", headers={"X-Shopper-Token": token("au0", ttl=-1)})
    assert expired.status_code == 401 and expired.json()["detail"] == "shopper token expired"


def test_pages_of_the_shops_origin_may_call(locked: Service) -> None:
    preflight = locked.http.options("/events", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-shopper-token"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "x-shopper-token" in preflight.headers["access-control-allow-headers"].lower()
    elsewhere = locked.http.options("/events", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert elsewhere.status_code == 400
    assert "access-control-allow-origin" not in elsewhere.headers
    answer = locked.http.get("/recommend", params={"n": 2}, headers={
        "Origin": ORIGIN, "X-Shopper-Token": token("au0")})  # the fast path
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN


def test_failed_attempts_are_limited_per_address(locked: Service) -> None:
    http = locked.http
    for _ in range(3):
        assert http.get("/popular", headers={"X-Client-Key": "guess"}).status_code == 401
    for headers in ({"X-Client-Key": "guess"}, {"X-Client-Key": CLIENT}):
        limited = http.get("/recommend", params={"user_id": "au0"}, headers=headers)
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert http.post("/admin/reload", headers={"X-API-Key": "s3cret"}).status_code == 429


def test_the_throttle_forgets_after_a_minute() -> None:
    now = [1000.0]
    throttle = AuthThrottle(2, clock=lambda: now[0])
    throttle.failed("a")
    throttle.failed("a")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("a")
    assert refused.value.headers == {"Retry-After": "61"}
    throttle.check("b")  # another address is not held back
    now[0] += 60
    throttle.check("a")


def test_open_calls_can_be_kept_from_naming_purchases(tmp_path: Path) -> None:
    store, _ = train_planted(tmp_path)
    svc = start_service(tmp_path, store, open_reasons="no_purchases")
    try:
        open_call = svc.http.get("/recommend", params={"user_id": "bu0", "n": 4})
        assert "because_you_bought" not in reasons(open_call)
        assert "for_you" in reasons(open_call)
        assert not [r for i in open_call.json()["items"] for r in i["reasons"]
                    if "item_id" in r and r["code"] != "similar_to"]
        operator = svc.http.get("/recommend", params={"user_id": "bu0", "n": 4},
                                headers={"X-API-Key": "s3cret"})
        assert "because_you_bought" in reasons(operator)
        assert ([i["item_id"] for i in operator.json()["items"]]
                == [i["item_id"] for i in open_call.json()["items"]])
    finally:
        svc.http.close()
        svc.server.stop()


def test_the_openapi_description_declares_the_security_schemes(locked: Service) -> None:
    spec = locked.http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {"X-API-Key", "X-Client-Key",
                                                     "X-Shopper-Token"}
    assert json.dumps(spec["paths"]["/users/{user_id}"]["delete"]["security"]) == (
        '[{"operatorKey": []}]')


def test_oversized_inputs_are_refused(tmp_path: Path) -> None:
    store, _ = train_planted(tmp_path)
    # One request a 100 s after a burst of 3: no refill however slow the machine is.
    svc = start_service(tmp_path, store, max_header_bytes=4096, rate_limit_per_s=0.01,
                        rate_limit_burst=3)
    try:
        big = svc.http.get("/popular", headers={"X-Filler": "x" * 8000})
        assert big.status_code == 431 and "headers larger" in big.json()["detail"]
        operator = {"X-API-Key": "s3cret"}  # not rate-limited: the limit is tried below
        many = svc.http.get("/recommend", params={"user_id": "au0",
                                                  "exclude": ",".join(["a1"] * 101)},
                            headers=operator)
        assert many.status_code == 422 and "at most 100" in many.text
        long_id = svc.http.get("/recommend", params={"recent_items": "a" * 300},
                               headers=operator)
        assert long_id.status_code == 422
        assert svc.http.get("/similar/" + "x" * 300, headers=operator).status_code == 422
        # Per-client rate limit: a burst of 3, then 429 with when to come back.
        answers = [svc.http.get("/popular").status_code for _ in range(3)]
        limited = svc.http.get("/popular")
        assert answers == [200] * 3 and limited.status_code == 429
        assert 90 <= int(limited.headers["retry-after"]) <= 100
        # The shop's backend is not limited.
        assert svc.http.get("/popular", headers={"X-API-Key": "s3cret"}).status_code == 200
    finally:
        svc.http.close()
        svc.server.stop()


def test_the_rate_limiter_refills_at_its_rate() -> None:
    from recsvc.service.auth import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("a")
    assert refused.value.headers == {"Retry-After": "1"}
    limiter.take("b")
    now[0] += 0.5  # one request's worth at 2 a second
    limiter.take("a")
    with pytest.raises(TooManyRequests):
        limiter.take("a")
