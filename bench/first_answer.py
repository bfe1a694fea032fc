"""Benchmark: a million-item model, from files to the first answer.

On a generated store with a 1M-item catalog (trained once with `--no-tune`, EASE on 50
neighbours per item), it measures in process each step of loading the model for
serving (checksums, mapping the arrays, the consistency check, the engine, the compiled
kernels and explanation tables), then starts `recsvc serve` (one worker, in-process
cache) and times, from the moment the process is spawned, the first `GET /readyz` 200
and the first `GET /recommend` 200 (polled every 20 ms), the next answers (ranked
exactly while the candidate index is built), when `/readyz` says the index is ready,
and answers after that. The reference in the same run: the same steps on a
100k-item model.

    .venv/bin/python bench/first_answer.py --items 1000000 --users 300000 --events 3000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import free_port, prepare_store

BIN = Path(sys.executable).parent
# Every algorithm; EASE's sparse form on 50 neighbours per item (its default of 200
# takes about 20 minutes at a million items here: BENCHMARKS.md, EASE on large catalogs).
CONFIG = """[model.ease]
neighbours = 50
"""


STEPS = r"""
import json, sys, time
t0 = time.perf_counter()
from recsvc.core.artifacts import open_version
from recsvc.core.model import RecommenderModel
from recsvc.core.engine import Engine
from recsvc.core.policy.rules import RulesFile
from recsvc.core.ranking.warmup import warm_up
marks = {"imports": time.perf_counter() - t0}
def mark(name, since):
    now = time.perf_counter(); marks[name] = round(now - since, 3); return now
t = time.perf_counter()
stored = open_version(sys.argv[1], None, verify=True); t = mark("open_and_checksums", t)
model = RecommenderModel.from_stored(stored); t = mark("map_arrays", t)
model.check(); t = mark("check", t)
engine = Engine.build(model, RulesFile()); t = mark("engine", t)
warm_up(engine.model); t = mark("warm_up", t)
marks["total"] = round(time.perf_counter() - t0, 3)
print(json.dumps(marks))
"""


def in_process(models: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", STEPS, str(models)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def first_answer(models: Path, users: int) -> dict:
    port = free_port()
    env = {**os.environ, "RECSVC_MODEL_ROOT": str(models)}
    env.pop("RECSVC_REDIS_URL", None)
    start = time.perf_counter()
    proc = subprocess.Popen([BIN / "recsvc", "serve", "--model-root", models, "--port",
                             str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict = {}
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            while "recommend_s" not in out:
                if proc.poll() is not None:
                    raise SystemExit("the service exited")
                try:
                    if "ready_s" not in out and client.get("/readyz").status_code == 200:
                        out["ready_s"] = round(time.perf_counter() - start, 2)
                    if client.get("/recommend", params={"user_id": "U1"}).status_code == 200:
                        out["recommend_s"] = round(time.perf_counter() - start, 2)
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
            out["next_answers_ms"] = answers(client, range(2, 12), users)
            while client.get("/readyz").json().get("ranking", "exact").startswith("exact ("):
                time.sleep(0.05)  # the candidate index, built aside
            out["index_ready_s"] = round(time.perf_counter() - start, 2)
            out["answers_after_ms"] = answers(client, range(12, 32), users)
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def answers(client: httpx.Client, shoppers: range, users: int) -> list[float]:
    """Milliseconds of each answer to shoppers not asked before (computed, not cached)."""
    times = []
    for u in shoppers:
        t0 = time.perf_counter()
        assert client.get("/recommend", params={"user_id": f"U{u * 97 % users}"}
                          ).status_code == 200
        times.append(round((time.perf_counter() - t0) * 1000, 1))
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=300_000)
    p.add_argument("--events", type=int, default=3_000_000)
    p.add_argument("--work", type=Path, default=Path("/tmp/first-answer"))
    p.add_argument("--reference-items", type=int, default=100_000)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = []
    for items in (args.reference_items, args.items):
        _, models = prepare_store(args.work / str(items), args.users, items, args.events,
                                  seed=3, config=CONFIG)
        size = sum(f.stat().st_size for f in (models / "current").resolve().iterdir())
        row = {"items": items, "model_mib": round(size / 2**20), "steps_s": in_process(models),
               **first_answer(models, args.users)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
