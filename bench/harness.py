"""Shared pieces of the service benchmarks: a private redis-server, a server process
that is ready when this returns, and wrk runs with their figures parsed.

Every benchmark runs its processes on this machine, one server at a time, and compares
figures measured in the same run (the machine is noisy: compare ratios)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"{tool} is not installed: run `make bench` (it installs it) or "
                 f"scripts/ensure-tool.sh {tool}")
    return path


class Process:
    """A server process, stopped on exit."""

    def __init__(self, args: list[str], ready_url: str | None = None,
                 env: dict[str, str] | None = None, timeout: float = 120) -> None:
        self.process = subprocess.Popen(args, env={**os.environ, **(env or {})},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        cwd=ROOT)
        if ready_url:
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{args[0]} exited: {self.process.stderr.read()[-2000:]}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{ready_url} not ready")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_server() -> tuple[Process, str]:
    need("redis-server")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="recsvc-bench-redis-")
    proc = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", workdir])
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


WRK_SCRIPT = """
math.randomseed(%(seed)d)
counter = %(start)d
request = function()
  local user
  if %(sequential)s then
    counter = counter + 1
    user = counter %% %(users)d
  else
    user = math.random(0, %(users)d - 1)
  end
  return wrk.format("GET", "%(path)s" .. user .. "%(suffix)s")
end
"""


def wrk(url: str, path: str, users: int, suffix: str = "", seconds: int = 10,
        connections: int = 32, seed: int = 1, sequential: bool = False,
        start: int = 0) -> dict[str, float]:
    """Requests per second and latency percentiles of one wrk run (one wrk thread: the
    other core is the server's). Users are drawn at random, or taken in turn from
    `start` (`sequential`: each request a user not asked before)."""
    need("wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % {"seed": seed, "path": path, "users": users, "suffix": suffix,
                              "sequential": "true" if sequential else "false",
                              "start": start})
        script = f.name
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", script, url], capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result = {"requests_per_s": rps, "non_2xx": int(errors.group(1)) if errors else 0}
    done = re.search(r"(\d+) requests in", out)
    result["requests"] = int(done.group(1)) if done else 0
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if m:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            result[f"p{pct}_ms"] = float(m.group(1)) * scale
    return result


def prepare_store(work: Path, users: int, items: int, events: int, seed: int,
                  retrain: bool = False, config: str | None = None) -> tuple[Path, Path]:
    """A generated store and a model trained on it (`--no-tune`, with the trainer TOML
    `config` if given), reused when present."""
    recsvc = str(Path(sys.executable).parent / "recsvc")
    store, models = work / "store", work / "models"
    if not (store / "interactions.csv").exists():
        subprocess.run([recsvc, "generate", "--out", str(store), "--users", str(users),
                        "--items", str(items), "--events", str(events), "--seed", str(seed)],
                       check=True, capture_output=True)
    if retrain or not (models / "current").exists():
        options = []
        if config is not None:
            (work / "train.toml").write_text(config)
            options = ["--config", str(work / "train.toml")]
        subprocess.run([recsvc, "train", *options, "--interactions",
                        str(store / "interactions.csv"), "--items", str(store / "items.csv"),
                        "--users", str(store / "users.csv"), "--model-root", str(models),
                        "--no-tune", "--quiet"], check=True, capture_output=True)
    return store, models
