"""Shoppers' data: forgetting a shopper (at once on every worker and in Redis, then in
the events files, the next model and old versions), consent per purpose leaving no
trace, ids hashed in Redis keys and in the model's opt-outs, and the ledger itself."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from recsvc.cli import main
from recsvc.core.artifacts import current_version, list_versions
from recsvc.core.lists import RecommendQuery
from recsvc.core.model import load_model
from recsvc.service.app import create_app
from recsvc.service.auth import Caller
from recsvc.service.state import ServiceState
from recsvc.service.usecases import shoppers
from recsvc.service.usecases.recommend import recommend_body
from recsvc.settings import Settings
from recsvc.stores.events_log import EventLog
from recsvc.stores.privacy import PrivacyLedger, load_key
from tests.conftest import LiveServer, free_port, quick_config, write_csv
from tests.test_retrain import last_summary, retrain_args
from tests.test_retrain import store as store  # noqa: F401,PLW0127 - the module fixture
from tests.test_service import QUIET, Service, start_service, train_planted
from training.pipeline import train

KEY = {"X-API-Key": "s3cret"}
OPEN = Caller("open")


def keys_of(url: str, namespace: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return sorted(k.decode() for k in client.keys(f"{namespace}:*"))
    finally:
        client.close()


def logged_users(state: Path) -> list[str]:
    events = state / "events"
    if not events.exists():
        return []
    return [json.loads(line)["user_id"] for f in sorted(events.iterdir())
            for line in f.read_text().splitlines() if line.strip()]


@pytest.fixture
def redis_service(tmp_path: Path, redis_server, request):
    store, _ = train_planted(tmp_path)
    namespace = request.node.name[-40:]
    svc = start_service(tmp_path, store, redis_url=redis_server.url, cache_namespace=namespace)
    svc.namespace = namespace  # type: ignore[attr-defined]
    yield svc
    svc.http.close()
    svc.server.stop()


def items(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


def test_forget_takes_effect_at_once_in_redis(redis_service: Service, redis_server) -> None:
    svc, ns = redis_service, redis_service.namespace  # type: ignore[attr-defined]
    stranger = items(svc.get("/recommend", n=5))
    personal = items(svc.get("/recommend", user_id="au0", n=5))
    assert personal != stranger
    event = {"user_id": "au0", "item_id": "a9", "event_type": "view", "event_id": "e1"}
    assert svc.http.post("/events", json=event).json()["accepted"] == 1
    items(svc.get("/recommend", user_id="au0", n=5))  # cached again, with the fresh event
    assert any(k.endswith(":{au0}") for k in keys_of(redis_server.url, ns))
    assert svc.http.delete("/users/au0").status_code == 401  # the operator's call only

    receipt = svc.http.delete("/users/au0", headers=KEY).json()
    assert receipt["users"] == 1 and receipt["removed_now"]["keys_deleted"] == 2
    assert "error" not in receipt["removed_now"]
    version = current_version(svc.root)
    assert receipt["pending"]["model_versions"][0]["version"] == version
    assert not [k for k in keys_of(redis_server.url, ns) if k.endswith(":{au0}")]
    # From now on: a stranger's list, nothing cached, nothing recorded.
    assert items(svc.get("/recommend", user_id="au0", n=5)) == stranger
    again = {**event, "event_id": "e2"}
    assert svc.http.post("/events", json=again).json() == {"accepted": 0, "duplicates": 0,
                                                          "ignored": 1}
    assert not [k for k in keys_of(redis_server.url, ns)
                if k.endswith((":{au0}", ":event:e2"))]
    assert logged_users(svc.state_dir) == ["au0"]  # the one row before; the job drops it
    ledger = (svc.state_dir / "privacy.jsonl").read_text()
    assert "au0" not in ledger and receipt["recorded"]["user_hashes"][0] in ledger
    assert svc.http.get("/users/au0/consent", headers=KEY).json()["forgotten"] is True


def test_forget_reaches_every_worker(tmp_path: Path) -> None:
    """Two workers with their own in-process caches: a forget made through one, and the
    other drops what it held as soon as it reads the ledger."""
    train_planted(tmp_path)
    settings = Settings(model_root=tmp_path / "m", state_dir=tmp_path / "state")

    async def scenario() -> None:
        one, two = ServiceState(settings), ServiceState(settings)
        await one.start()
        await two.start()
        query = RecommendQuery(user_id="bu3", n=5)
        stranger = json.loads(await recommend_body(two, RecommendQuery(user_id="", n=5), OPEN))
        personal = json.loads(await recommend_body(two, query, OPEN))
        assert personal["items"] != stranger["items"]
        held = two.cache._lists  # type: ignore[attr-defined]
        assert [k for k in held if k.endswith(":{bu3}")]
        await shoppers.forget(one, "bu3")
        assert await two.follow_privacy() == 1
        assert not [k for k in held if k.endswith(":{bu3}")]
        after = json.loads(await recommend_body(two, query, OPEN))
        assert after["items"] == stranger["items"] and after["user_id"] == "bu3"
        assert not [k for k in held if k.endswith(":{bu3}")]  # and not cached again

    asyncio.run(scenario())


def test_consent_per_purpose_leaves_no_trace(redis_service: Service, redis_server) -> None:
    svc, ns = redis_service, redis_service.namespace  # type: ignore[attr-defined]
    stranger = items(svc.get("/recommend", n=5))
    # bu1 refused consent in the users file the model was trained on.
    assert svc.http.get("/users/bu1/consent", headers=KEY).json() == {
        "user_id": "bu1", "consent": {"personalization": False, "email": None, "sms": None},
        "source": "users_file", "forgotten": False}
    assert items(svc.get("/recommend", user_id="bu1", n=5)) == stranger
    # au3 withdraws consent to personalization through the API.
    body = svc.http.put("/users/au3/consent", json={"personalization": False},
                        headers=KEY).json()
    # Purposes not spoken about stay unknown here (the shop's CRM has them), never "yes".
    assert body["consent"] == {"personalization": False, "email": None, "sms": None}
    assert body["source"] == "api"
    assert items(svc.get("/recommend", user_id="au3", n=5)) == stranger
    events = [{"user_id": u, "item_id": "a1", "event_type": "purchase", "event_id": f"x{u}"}
              for u in ("bu1", "au3")]
    assert svc.http.post("/events", json=events).json() == {"accepted": 0, "duplicates": 0,
                                                           "ignored": 2}
    keys = keys_of(redis_server.url, ns)
    assert not [k for k in keys if "bu1" in k or "au3" in k], keys
    assert logged_users(svc.state_dir) == []
    # Withdrawing email consent alone leaves the site's lists personal.
    body = svc.http.put("/users/au4/consent", json={"email": False}, headers=KEY).json()
    assert body["consent"] == {"personalization": True, "email": False, "sms": None}
    assert items(svc.get("/recommend", user_id="au4", n=5)) != stranger
    assert [k for k in keys_of(redis_server.url, ns) if k.endswith(":{au4}")]
    # Given again: recorded again.
    svc.http.put("/users/au3/consent", json={"personalization": True}, headers=KEY)
    assert svc.http.post("/events", json=events[1]).json()["accepted"] == 1
    assert logged_users(svc.state_dir) == ["au3"]
    bad = svc.http.put("/users/au3/consent", json={"personalisation": False}, headers=KEY)
    assert bad.status_code == 422 and "personalisation" in bad.text
    assert svc.http.put("/users/au3/consent", json={"email": True}).status_code == 401


def test_redis_keys_carry_no_ids_when_hashing_is_on(tmp_path: Path, redis_server,
                                                    monkeypatch) -> None:
    store, _ = train_planted(tmp_path)
    ns = "hashed-ids"
    secret = "k" * 32
    svc = start_service(tmp_path, store, redis_url=redis_server.url, cache_namespace=ns,
                        id_hash_key=secret)
    try:
        first = items(svc.get("/recommend", user_id="au0", n=5))
        svc.http.post("/events", json={"user_id": "au1", "item_id": "a2",
                                       "event_type": "view", "event_id": "ev-9"})
        first = items(svc.get("/recommend", user_id="au0", n=5, page=1))  # a visit's pages
        deadline = time.monotonic() + 30  # what au0 was shown is written after the answer
        while not [k for k in keys_of(redis_server.url, ns) if k.startswith(f"{ns}:shown:")]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        keys = keys_of(redis_server.url, ns)  # a list, fresh events, an event id, pages
        assert len(keys) == 4 and not [k for k in keys if "au0" in k or "au1" in k]
        assert items(svc.get("/recommend", user_id="au0", n=5)) == first
        assert keys_of(redis_server.url, ns) == keys  # a hit under the same hashed key
        # The warm-up job writes under the same hashed keys.
        monkeypatch.setenv("RECSVC_ID_HASH_KEY", secret)
        assert main(["warm-cache", "--model-root", str(svc.root), "--redis-url",
                     redis_server.url, "--users", "all", "--processes", "1"]) == 0
    finally:
        svc.http.close()
        svc.server.stop()


def test_model_files_name_no_opted_out_shopper(tmp_path: Path, planted) -> None:
    users = [{"user_id": "zz-refused-7", "consent": "no"},
             {"user_id": "au0", "consent": "personalization;email"},
             {"user_id": "au1", "consent": "email|sms"},
             {"user_id": "au2", "consent": "granted"}]
    config = quick_config(tmp_path / "m", **planted,
                          users=write_csv(tmp_path / "users.csv", users))
    version = train(config, QUIET).version
    for path in (tmp_path / "m" / version).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"zz-refused-7" not in data
            assert "zz-refused-7".encode("utf-32-le") not in data, path
    model = load_model(tmp_path / "m")
    assert model.is_opted_out("zz-refused-7") and not model.is_opted_out("au0")
    assert model.is_opted_out("au1") and not model.is_opted_out("au2")
    assert model.opted_out_mask(["x", "zz-refused-7"]).tolist() == [False, True]


def test_ledger_follows_appends_and_keeps_its_key_private(tmp_path: Path) -> None:
    key_file = tmp_path / "id_hash.key"
    key = load_key(None, key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert load_key(None, key_file) == key and load_key("given-key-0123456", key_file) != key
    writer = PrivacyLedger.open(tmp_path / "privacy.jsonl", key)
    reader = PrivacyLedger.open(tmp_path / "privacy.jsonl", key)
    assert reader.allows("u1", "personalization")
    writer.forget(["u1"], at=100.0)
    writer.set_consent("u2", {"personalization": True, "email": False, "sms": True}, 101.0)
    with open(tmp_path / "privacy.jsonl", "ab") as f:
        f.write(b'{"user": "torn')  # a writer killed mid-line
    assert reader.refresh() == [writer.digest("u1")]
    assert not reader.allows("u1", "personalization") and reader.is_forgotten("u1")
    assert reader.allows("u2", "personalization") and not reader.allows("u2", "email")
    assert reader.consent_of("u3") is None and reader.forgotten_since() == 100.0
    writer.forget(["u3"], at=102.0)  # starts on a line of its own after the torn one
    assert reader.refresh() == [writer.digest("u3")]
    other = PrivacyLedger.open(tmp_path / "privacy.jsonl", b"another key 0123456789")
    assert other.allows("u1", "personalization")  # hashes mean nothing under another key


def test_rewriting_the_events_log_loses_no_concurrent_append(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events", rotate_bytes=1 << 30)
    log.append([{"user_id": u, "item_id": "i", "event_type": "view", "timestamp": 1}
                for u in ("gone", "kept", "gone")])
    appended = threading.Event()

    def drop(users: np.ndarray) -> np.ndarray:
        # A worker appends while the file is being rewritten: it waits for the lock,
        # then must write to the new file, not the replaced one.
        threading.Thread(target=lambda: (log.append([{"user_id": "late", "item_id": "i",
                                                      "event_type": "view",
                                                      "timestamp": 2}]),
                                         appended.set())).start()
        time.sleep(0.2)
        return users == "gone"

    changed = log.drop_users(drop)
    assert appended.wait(10)
    assert changed == [{"file": log.files()[0].name, "rows_removed": 2}]
    assert sorted(json.loads(line)["user_id"] for f in log.files()
                  for line in f.read_text().splitlines()) == ["kept", "late"]


def test_nightly_job_removes_the_forgotten_from_files_models_and_versions(
        store, tmp_path: Path) -> None:  # noqa: F811
    root, state = tmp_path / "m", tmp_path / "state"
    assert main(retrain_args(store, root)) == 0
    first = current_version(root)
    model = load_model(root)
    user = str(model.user_ids[np.argmax(np.diff(model.user_items.indptr))])
    server = LiveServer(create_app(Settings(model_root=root, state_dir=state, api_key="k",
                                            reload_interval_s=0.2)), free_port())
    try:
        events = [{"user_id": u, "item_id": str(model.item_ids[0]), "event_type": "view"}
                  for u in (user, "someone-else")]
        assert httpx.post(f"{server.url}/events", json=events).json()["accepted"] == 2
        receipt = httpx.delete(f"{server.url}/users/{user}",
                               headers={"X-API-Key": "k"}).json()
        assert [v["version"] for v in receipt["pending"]["model_versions"]] == [first]
    finally:
        server.stop()
    assert main(["forget", "--model-root", str(root), "--state-dir", str(state),
                 "nobody-known"]) == 0
    assert main(retrain_args(store, root, "--events-dir", str(state / "events"),
                             "--state-dir", str(state), "--forget-grace-days", "0")) == 0
    summary = last_summary(root)
    assert summary["promoted"]
    forgotten = summary["forgotten"]
    assert forgotten["users"] == 2
    assert [f["rows_removed"] for f in forgotten["events_files"]] == [1]
    assert forgotten["versions_retired"] == [first] and first not in list_versions(root)
    assert "current_holds_forgotten" not in forgotten
    assert logged_users(state) == ["someone-else"]
    new = load_model(root)
    assert new.user_index([user])[0] < 0
    assert new.manifest.data_quality["rows_dropped"]["forgotten_users"] > 0
    assert new.user_index(["someone-else"])[0] >= 0


def test_the_nightly_job_keeps_nothing_past_the_retention(store, tmp_path: Path  # noqa: F811
                                                          ) -> None:
    root, events = tmp_path / "m", tmp_path / "state" / "events"
    events.mkdir(parents=True)
    line = '{"user_id":"U1","item_id":"I1","event_type":"view","timestamp":1764547200}\n'
    for name in ("events-20240101.jsonl", "events-20240101-1.jsonl", "events-29990101.jsonl"):
        (events / name).write_text(line)
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "20240101T000000.000000Z.json").write_text("{}")
    assert main(retrain_args(store, root, "--events-dir", str(events),
                             "--retention-days", "30")) == 0
    retention = last_summary(root)["retention"]
    assert retention["events_files"] == ["events-20240101.jsonl", "events-20240101-1.jsonl"]
    assert retention["run_summaries"] == 1
    assert sorted(p.name for p in events.iterdir()) == ["events-29990101.jsonl"]
    assert len(list((root / "runs").iterdir())) == 1  # tonight's


def test_reports_name_shoppers_by_their_hash_when_hashing_is_on(tmp_path: Path) -> None:
    import pandas as pd

    from recsvc.core.policy.privacy import IdHasher
    from training.clean import clean
    from training.config import TrainConfig

    config = TrainConfig()
    rows = [{"user_id": "crawler-1", "item_id": f"I{i}", "event_type": "view",
             "timestamp": 1_764_547_200 + i // 20} for i in range(2000)]  # 1,200 a minute
    rows += [{"user_id": "person", "item_id": "I1", "event_type": "purchase",
              "timestamp": 1_764_547_200}]
    hasher = IdHasher(b"k" * 32)
    data = clean(pd.DataFrame(rows), None, None, config.events, config.cleaning,
                 now=1_764_600_000, shown_id=hasher.digest)
    bots = data.report["bots"]
    examples = [e for rule in bots.values() for e in rule["examples"]]
    assert examples and set(examples) == {hasher.digest("crawler-1")}
    assert "crawler-1" not in str(data.report)


def test_forget_reads_a_file_of_ids_and_records_no_id(tmp_path: Path, capsys) -> None:
    train_planted(tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("au1\n\n  au2  \nau1\n")
    state = tmp_path / "state"
    assert main(["forget", "--file", str(ids), "--model-root", str(tmp_path / "m"),
                 "--state-dir", str(state)]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["users"] == 2 and len(receipt["recorded"]["user_hashes"]) == 2
    assert receipt["pending"]["model_versions"][0]["holds_rows_of"] == 2
    ledger = (state / "privacy.jsonl").read_text()
    assert "au1" not in ledger and "au2" not in ledger and ledger.count("\n") == 2
    assert main(["forget", "--model-root", str(tmp_path / "m"), "--state-dir",
                 str(state)]) == 2  # no ids: a clear error


def test_a_state_directory_it_cannot_write_still_serves(tmp_path: Path) -> None:
    """Nothing forgotten yet: no key is needed, so a service that cannot write its state
    (here a path under a file: refused even to root) starts and serves; a forget it
    cannot record is a 503 naming why, not a 500."""
    store, _ = train_planted(tmp_path)
    (tmp_path / "not-a-directory").write_text("")
    svc = start_service(tmp_path, store, state_dir=tmp_path / "not-a-directory" / "state")
    try:
        assert svc.http.get("/recommend", params={"user_id": "au0"}).status_code == 200
        refused = svc.http.delete("/users/au0", headers=KEY)
        assert refused.status_code == 503 and "not recorded" in refused.json()["detail"]
    finally:
        svc.http.close()
        svc.server.stop()
