"""Benchmark: cache-hit `GET /recommend` throughput against a minimal FastAPI app that
does one Redis GET and returns the stored bytes (bench/minimal_app.py).

Both run under uvicorn with one worker, against the same private Redis holding lists
written by `recsvc warm-cache`, loaded by the same wrk (one thread, 32 connections,
random users), in alternating rounds. The figure is the ratio of median throughputs.

    .venv/bin/python bench/serve_cache_hit.py [--users 20000] [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from harness import ROOT, Process, free_port, prepare_store, redis_server, wrk

BIN = Path(sys.executable).parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=2_000)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workdir", type=Path, default=ROOT / "bench/results/serve_cache_hit")
    args = p.parse_args()
    work = args.workdir
    _, models = prepare_store(work, args.users, args.items, args.events, seed=3, retrain=True)
    recsvc = str(BIN / "recsvc")
    version = (models / "current").resolve().name
    redis_proc, redis_url = redis_server()
    with redis_proc:
        warmed = subprocess.run([recsvc, "warm-cache", "--model-root", str(models),
                                 "--redis-url", redis_url, "--users", "all"],
                                check=True, capture_output=True, text=True).stdout.strip()
        ours_port, ref_port = free_port(), free_port()
        env = {"RECSVC_REDIS_URL": redis_url, "RECSVC_STATE_DIR": str(work / "state")}
        ours = Process([recsvc, "serve", "--model-root", str(models), "--port", str(ours_port),
                        "--workers", "1", "--log-level", "warning"],
                       ready_url=f"http://127.0.0.1:{ours_port}/readyz", env=env)
        reference = Process(
            [str(BIN / "uvicorn"), "--factory", "bench.minimal_app:create_app", "--port",
             str(ref_port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
            ready_url=f"http://127.0.0.1:{ref_port}/healthz",
            env={"REDIS_URL": redis_url, "KEY_PREFIX": f"recsvc:list:{version}:default:"})
        with ours, reference:
            targets = {"recsvc": f"http://127.0.0.1:{ours_port}",
                       "minimal": f"http://127.0.0.1:{ref_port}"}
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for url in targets.values():
                # Warm-up: every user asked once (users without a history were not
                # warmed; this caches theirs), then connections and lazy imports.
                wrk(url, "/recommend?user_id=U", args.users, "&n=10",
                    seconds=max(5, args.users // 2000), connections=args.connections,
                    sequential=True)
            for r in range(args.rounds):
                for name, url in targets.items():
                    runs[name].append(wrk(url, "/recommend?user_id=U", args.users, "&n=10",
                                          seconds=args.seconds,
                                          connections=args.connections, seed=r + 1))
                    print(name, runs[name][-1], file=sys.stderr)
    median = {name: statistics.median(r["requests_per_s"] for r in rs)
              for name, rs in runs.items()}
    result = {
        "users": args.users, "items": args.items, "warm_cache": warmed,
        "connections": args.connections, "seconds_per_round": args.seconds,
        "runs": runs,
        "median_requests_per_s": median,
        "ratio_recsvc_to_minimal": round(median["recsvc"] / median["minimal"], 3),
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
