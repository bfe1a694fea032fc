"""Shared fixtures: tiny stores written as real files, and a trained model on them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsvc.core.manifest import (
    Blend,
    Counts,
    Layout,
    Metrics,
    ModelCard,
    TrainingInfo,
    TuningSummary,
)
from recsvc.core.policy.events import EventWeights
from training.config import TrainConfig

DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def write_csv(path: Path, rows: list[dict] | pd.DataFrame) -> Path:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return path


def planted_seen(user: str) -> list[str]:
    """The 6 items (of their group's 10) a planted user touched: a seeded random pick."""
    group, number = user[0], int(user[2:])
    rng = np.random.default_rng([ord(group), number])
    return [f"{group}{j}" for j in sorted(rng.choice(10, size=6, replace=False))]


def planted_store(tmp_path: Path) -> dict[str, Path]:
    """Two taste groups: group A buys kitchen items a0..a9, group B garden items b0..b9.
    Each user touched 6 of their group's 10 items; the planted answer for a user is the
    other 4 of their group. Item `a_new` is a kitchen item nobody has touched yet."""
    rows = []
    for group in ("a", "b"):
        for u in range(30):
            user = f"{group}u{u}"
            for j, item in enumerate(planted_seen(user)):
                t = T0 + (u * 7 + j) * 3600
                rows.append({"user_id": user, "item_id": item, "event_type": "view",
                             "timestamp": t})
                rows.append({"user_id": user, "item_id": item, "event_type": "purchase",
                             "timestamp": t + 60, "value": 1})
    items = []
    for group, cat, noun in (("a", "Kitchen > Cookware", "pan skillet"),
                             ("b", "Garden > Tools", "rake shovel")):
        for j in range(10):
            items.append({"item_id": f"{group}{j}", "title": f"steel {noun} {j}",
                          "description": f"{noun} for the {cat.split(' > ')[0].lower()}",
                          "category": cat, "brand": f"{group}brand", "price": 20 + j,
                          "in_stock": True})
    items.append({"item_id": "a_new", "title": "steel pan skillet deluxe",
                  "description": "pan skillet for the kitchen", "category": "Kitchen > Cookware",
                  "brand": "abrand", "price": 25, "in_stock": True})
    return {
        "interactions": write_csv(tmp_path / "interactions.csv", rows),
        "items": write_csv(tmp_path / "items.csv", items),
    }


def quick_config(model_root: Path, **inputs: Path) -> TrainConfig:
    config = TrainConfig()
    config.output.model_root = model_root
    for key, value in inputs.items():
        setattr(config.input, key, value)
    config.tuning.enabled = False
    config.model.set("cf", factors=2, iterations=10)  # the planted structure has rank 2
    return config


def minimal_card() -> ModelCard:
    """A model card with every required field, for tests of the format alone."""
    return ModelCard(
        recsvc_version="test", events=EventWeights().model_dump(),
        training=TrainingInfo(reference_time=T0, half_life_days=90.0,
                              repeat_purchase_rate=0.0, config={}),
        tuning=TuningSummary(skipped="test", seconds=0.0, budget_s=0.0, trials=[], best={},
                             validation_metrics={}),
        metrics=Metrics(validation={}), inputs={"note": "test"}, data_quality={})


def empty_layout() -> Layout:
    return Layout(counts=Counts(users=0, items=0, interactions=0), algorithms={},
                  blend=Blend(weights={}, exclude_seen=True), user_attributes=[])


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, Path]:
    return planted_store(tmp_path)


# -- the service: real uvicorn on a free port, real Redis on another --------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The app under real uvicorn in a thread, spoken to over real HTTP."""

    def __init__(self, app, port: int) -> None:  # noqa: ANN001
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class RedisServer:
    """A private redis-server on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which "
                               "installs it (scripts/ensure-tool.sh redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, so below 55536."""
    import random

    for _ in range(1000):
        port = random.randint(20_000, 45_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster:
    """A real Redis Cluster on this machine: `nodes` primaries (no replicas), each a
    private `redis-server` on a free port, slots spread by `redis-cli --cluster
    create`."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        self.ports = [cluster_port() for _ in range(nodes)]
        self.processes = [subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--cluster-enabled", "yes",
             "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "5000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in self.ports]
        import redis

        deadline = time.monotonic() + 30
        for port in self.ports:
            while True:
                try:
                    redis.Redis(port=port).ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "a cluster node did not start"
                    time.sleep(0.05)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 60
        while not all(redis.Redis(port=p).cluster("info")["cluster_state"] == "ok"
                      for p in self.ports):
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.1)
        self.url = f"redis-cluster://127.0.0.1:{self.ports[0]}"

    def client(self):  # noqa: ANN201
        import redis

        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0])

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


def replace_array(version_dir: Path, name: str, array: np.ndarray) -> None:
    """Overwrite one array of a written version and fix its checksum in the manifest, as
    a trainer bug would have written it: every file verifies, the contents disagree."""
    import hashlib
    import json

    path = version_dir / f"{name}.npy"
    np.save(path, array, allow_pickle=False)
    manifest_path = version_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][f"{name}.npy"] = {
        "bytes": path.stat().st_size, "dtype": array.dtype.str, "shape": list(array.shape),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    manifest_path.write_text(json.dumps(manifest))
