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
