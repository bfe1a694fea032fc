"""`recsvc serve` as an operator runs it: a real process, settings from the environment
and options, several workers; and a service that starts before any model exists."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port, planted_store, quick_config
from tests.test_service import QUIET, start_service, train_planted
from training.pipeline import train


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.2)


def test_serve_command_with_two_workers(tmp_path: Path) -> None:
    train_planted(tmp_path)
    port = free_port()
    env = {**os.environ, "RECSVC_API_KEY": "k", "RECSVC_STATE_DIR": str(tmp_path / "state"),
           "RECSVC_PORT": "1"}  # the option below wins over the environment
    process = subprocess.Popen(
        [sys.executable, "-m", "recsvc", "serve", "--model-root", str(tmp_path / "m"),
         "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(url, process).json()["status"] == "ready"
        with httpx.Client(base_url=url, timeout=10) as http:
            for _ in range(20):  # spread over both workers
                assert http.get("/recommend", params={"user_id": "au1"}).status_code == 200
            patched = http.patch("/items/a5", json={"in_stock": False},
                                 headers={"X-API-Key": "k"})
            assert patched.status_code == 200
            for _ in range(20):  # every worker sees the change at once
                items = http.get("/recommend", params={"user_id": "au1", "n": 10}).json()
                assert "a5" not in [i["item_id"] for i in items["items"]]
            metrics = http.get("/metrics").text
            count = [line for line in metrics.splitlines()
                     if line.startswith('recsvc_request_seconds_count{endpoint="/recommend"}')]
            assert count and float(count[0].split()[-1]) >= 40  # merged across workers
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_bad_settings_stop_serve_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "recsvc", "serve", "--port", "70000"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "port" in result.stderr
    rules = tmp_path / "rules.toml"
    rules.write_text("[[boost]]\n")
    result = subprocess.run([sys.executable, "-m", "recsvc", "serve", "--rules-file",
                             str(rules)], capture_output=True, text=True)
    assert result.returncode == 2 and "rules file" in result.stderr


def test_service_waits_for_its_first_model(tmp_path: Path) -> None:
    store = planted_store(tmp_path)
    svc = start_service(tmp_path, store)
    try:
        ready = svc.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "no model"
        response = svc.get("/recommend", user_id="au1")
        assert response.status_code == 503 and "no model" in response.json()["detail"]
        train(quick_config(tmp_path / "m", **store), QUIET)
        deadline = time.monotonic() + 10
        while svc.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert svc.get("/recommend", user_id="au1").status_code == 200
    finally:
        svc.http.close()
        svc.server.stop()


def test_a_taken_port_is_one_line_and_its_own_exit_code(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "recsvc", "serve", "--model-root",
                                 str(tmp_path / "m"), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 5
    assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr


def test_two_workers_log_and_report_as_one_service(tmp_path: Path, redis_server) -> None:
    """Each worker logs with time, level and logger (JSON here), INFO lines included;
    reports Redis up without anyone asking /readyz; and after a swap reports the version
    it replaced at 0 (it used to keep every version ever loaded at 1)."""
    import json as jsonlib

    from tests.test_model_safety import metric, wait_for

    store, first = train_planted(tmp_path)
    port = free_port()
    env = {**os.environ, "RECSVC_STATE_DIR": str(tmp_path / "state"),
           "RECSVC_REDIS_URL": redis_server.url, "RECSVC_RELOAD_INTERVAL_S": "0.2",
           "RECSVC_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "recsvc", "serve", "--model-root", str(tmp_path / "m"),
         "--port", str(port), "--workers", "2"], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def samples(name: str, having: str = "") -> list[str]:
        return [line for line in httpx.get(f"{url}/metrics").text.splitlines()
                if line.startswith(name) and having in line]

    try:
        wait_for(lambda: _alive(url, process), "the service did not start", timeout=180)
        up = wait_for(lambda: len(s := samples("recsvc_redis_up")) == 2 and s,
                      "both workers report Redis")
        assert all(line.endswith(" 1.0") for line in up)
        second = train(quick_config(tmp_path / "m", **store), QUIET).version
        wait_for(lambda: metric("\n".join(samples("recsvc_model_info", second)),
                                "recsvc_model_info") == 2, "both workers swapped")
        assert len(samples("recsvc_model_info", first)) == 2  # one sample a worker: 0
        assert metric("\n".join(samples("recsvc_model_info", first)), "recsvc_model_info") == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    lines = [jsonlib.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    serving = [e for e in lines if e["logger"] == "recsvc.state" and e["level"] == "INFO"
               and e["message"].startswith("serving model")]
    assert len(serving) == 4  # each worker: the first model, then the second


def _alive(url: str, process: subprocess.Popen) -> bool:
    assert process.poll() is None, "the service exited"
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
