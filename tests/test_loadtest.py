"""The locust load test runs against a real service over real HTTP without a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from recsvc.service.app import create_app
from recsvc.settings import Settings
from tests.conftest import LiveServer, free_port, quick_config
from training.generate import StoreSpec, generate_store
from training.pipeline import train
from training.progress import Progress

ROOT = Path(__file__).resolve().parent.parent


def test_locust_storefront_load_has_no_failures(tmp_path: Path) -> None:
    paths = generate_store(StoreSpec(users=300, items=100, events=12_000, seed=8),
                           tmp_path / "store", Progress(quiet=True))
    train(quick_config(tmp_path / "m", **paths), Progress(quiet=True))
    server = LiveServer(create_app(Settings(model_root=tmp_path / "m",
                                            state_dir=tmp_path / "state")), free_port())
    try:
        env = {**os.environ, "RECSVC_LOAD_USERS": "300", "RECSVC_LOAD_ITEMS": "100"}
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests/locustfile.py"),
             "--headless", "-u", "8", "-r", "8", "-t", "6s", "--host", server.url,
             "--only-summary", "--exit-code-on-error", "1"],
            capture_output=True, text=True, env=env, timeout=120)
        report = result.stdout + result.stderr
        assert result.returncode == 0, report[-3000:]
        assert "/recommend" in report and "/events" in report
        # The shoppers' events reached the events log.
        logged = sum(len(f.read_text().splitlines())
                     for f in (tmp_path / "state" / "events").iterdir())
        assert logged > 0
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        server.stop()


def test_locust_load_on_two_workers_and_on_a_second_process(tmp_path: Path,
                                                            redis_server) -> None:
    """Replicas share nothing but Redis and the files: a service with two workers and a
    second service process, on one Redis and one state directory, both under load at
    once, without a failure; they serve the same version, put a shopper in the same
    variant and see each other's invalidations."""
    import redis

    from recsvc.stores.keys import fresh_key, list_key
    from tests.test_serve_command import wait_ready

    redis.Redis.from_url(redis_server.url).flushdb()
    paths = generate_store(StoreSpec(users=300, items=100, events=12_000, seed=8),
                           tmp_path / "store", Progress(quiet=True))
    train(quick_config(tmp_path / "m", **paths), Progress(quiet=True))
    rules = tmp_path / "rules.toml"
    rules.write_text("[variants.control]\nshare = 1\n[variants.trial]\nshare = 1\n")
    env = {**os.environ, "RECSVC_REDIS_URL": redis_server.url,
           "RECSVC_STATE_DIR": str(tmp_path / "state"), "RECSVC_RULES_FILE": str(rules),
           "RECSVC_LOAD_USERS": "250", "RECSVC_LOAD_ITEMS": "100"}  # U250..: untouched
    recsvc = str(Path(sys.executable).parent / "recsvc")
    ports = [free_port(), free_port()]
    services = [subprocess.Popen([recsvc, "serve", "--model-root", str(tmp_path / "m"),
                                  "--port", str(port), "--workers", str(workers),
                                  "--log-level", "warning"], env=env,
                                 stderr=subprocess.PIPE)
                for port, workers in zip(ports, (2, 1), strict=True)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, services, strict=True):
            wait_ready(url, process, timeout=180)
        loads = [subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests/locustfile.py"),
             "--headless", "-u", "6", "-r", "6", "-t", "6s", "--host", url,
             "--only-summary", "--exit-code-on-error", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            for url in urls]
        for load in loads:
            out, _ = load.communicate(timeout=180)
            assert load.returncode == 0, out[-3000:]
        a, b = (httpx.Client(base_url=url, timeout=30) for url in urls)
        assert a.get("/model").json()["version"] == b.get("/model").json()["version"]
        for user in ("U1", "U2", "U3", "U4", "U5"):
            assert (a.get("/recommend", params={"user_id": user}).json()["variant"]
                    == b.get("/recommend", params={"user_id": user}).json()["variant"])
        body = b.get("/recommend", params={"user_id": "U277", "n": 3}).json()
        key = list_key("recsvc", body["model_version"], body["variant"], "U277")
        client = redis.Redis.from_url(redis_server.url)
        assert client.exists(key)  # cached by the second process
        bought = a.post("/events", json=[{"user_id": "U277", "item_id": i["item_id"],
                                          "event_type": "purchase"} for i in body["items"]])
        assert bought.json()["accepted"] == 3
        assert not client.exists(key)  # invalidated through the first
        assert client.llen(fresh_key("recsvc", "U277")) == 3
        b.get("/recommend", params={"user_id": "U277", "n": 3})  # made again, with them
        assert client.exists(key)
        a.close()
        b.close()
    finally:
        for process in services:
            process.terminate()
            process.wait(timeout=30)
