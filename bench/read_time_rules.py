"""Benchmark: the cache-hit ratio and throughput of `GET /recommend` while merchandisers
change the rules (issue 17), against the same service without rules in the same run.

One uvicorn worker, a private Redis warmed by `recsvc warm-cache` (20,000 users), wrk
(one thread, 32 connections, random users, n=10). Rounds, each after `PUT /admin/rules`:
no rules (the reference); pins, exclusions and a category cap (read-time rules); the
pins moved; a boost added (a ranking rule: every cached list is made again once). Each
round reports requests/s and its share of cache hits (`recsvc_cache_total`).

    .venv/bin/python bench/read_time_rules.py [--users 20000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import ROOT, Process, free_port, prepare_store, redis_server, wrk

BIN = Path(sys.executable).parent
KEY = "bench-key"


def cache_counts(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^recsvc_cache_total\{result="(\w+)"\} ([\d.e+]+)$', text, re.M)}


def propagation(recsvc: str, models: Path, work: Path, redis_url: str, items: list[str],
                trials: int = 5) -> dict[str, float]:
    """Seconds from `PUT /admin/rules` on one of two workers until 40 answers in a row,
    from either worker, show the new pin to a shopper whose list is cached."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rules_file = work / "rules-two-workers.toml"
    rules_file.write_text("")
    env = {"RECSVC_REDIS_URL": redis_url, "RECSVC_STATE_DIR": str(work / "state"),
           "RECSVC_RULES_FILE": str(rules_file), "RECSVC_API_KEY": KEY,
           "RECSVC_IMPRESSIONS": "false"}
    seconds = []
    with Process([recsvc, "serve", "--model-root", str(models), "--port", str(port),
                  "--workers", "2", "--log-level", "warning"], ready_url=f"{url}/readyz",
                 env=env), httpx.Client(base_url=url) as http:
        for t in range(trials):
            pin = items[100 + t]
            http.get("/recommend", params={"user_id": "U1"})
            t0 = time.perf_counter()
            http.put("/admin/rules", content=f'[pin]\nitems = ["{pin}"]\n',
                     headers={"X-API-Key": KEY}).raise_for_status()
            streak = 0
            while streak < 40:
                first = http.get("/recommend", params={"user_id": "U1", "n": 1}).json()
                streak = streak + 1 if first["items"][0]["item_id"] == pin else 0
                if streak == 1:
                    seen = time.perf_counter() - t0
            seconds.append(seen)
    return {"trials": trials, "max_s": round(max(seconds), 3),
            "median_s": round(sorted(seconds)[trials // 2], 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=2_000)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workdir", type=Path, default=ROOT / "bench/results/read_time_rules")
    args = p.parse_args()
    work = args.workdir
    store, models = prepare_store(work, args.users, args.items, args.events, seed=3)
    with open(store / "items.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    items = [r["item_id"] for r in rows]
    categories = sorted({r["category"] for r in rows})
    rules_file = work / "rules.toml"
    rules_file.write_text("")
    recsvc = str(BIN / "recsvc")
    read_time = (f'[pin]\nitems = ["{items[0]}", "{items[1]}"]\n'
                 f'[exclude]\nitems = {json.dumps(items[2:22])}\n'
                 "[diversity]\nmax_per_category = 3\n")
    rounds = {
        "no rules (reference)": "",
        "pins, 20 exclusions, category cap": read_time,
        "pins moved": read_time.replace(items[0], items[50]),
        "a category boosted (ranking rule)": read_time + (
            f'[[boost]]\ncategory = "{categories[0].split(" > ")[0]}"\namount = 1.0\n'),
    }
    redis_proc, redis_url = redis_server()
    results = {}
    with redis_proc:
        subprocess.run([recsvc, "warm-cache", "--model-root", str(models), "--redis-url",
                        redis_url, "--users", "all", "--rules-file", str(rules_file)],
                       check=True, capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"RECSVC_REDIS_URL": redis_url, "RECSVC_STATE_DIR": str(work / "state"),
               "RECSVC_RULES_FILE": str(rules_file), "RECSVC_API_KEY": KEY,
               "RECSVC_IMPRESSIONS": "false"}
        with Process([recsvc, "serve", "--model-root", str(models), "--port", str(port),
                      "--workers", "1", "--log-level", "warning"],
                     ready_url=f"{url}/readyz", env=env):
            wrk(url, "/recommend?user_id=U", args.users, "&n=10", seconds=5,
                connections=args.connections, sequential=True)  # users without a list
            for r, (name, text) in enumerate(rounds.items()):
                answer = httpx.put(f"{url}/admin/rules", content=text,
                                   headers={"X-API-Key": KEY})
                answer.raise_for_status()
                before = cache_counts(url)
                run = wrk(url, "/recommend?user_id=U", args.users, "&n=10",
                          seconds=args.seconds, connections=args.connections, seed=r + 1)
                after = cache_counts(url)
                hits = after.get("hit", 0) - before.get("hit", 0)
                misses = after.get("miss", 0) - before.get("miss", 0)
                run["hit_ratio"] = round(hits / max(hits + misses, 1), 4)
                results[name] = run
                print(name, run, file=sys.stderr)
        results["propagation"] = propagation(recsvc, models, work, redis_url, items)
    reference = results["no rules (reference)"]["requests_per_s"]
    for run in results.values():
        if "requests_per_s" in run:
            run["throughput_ratio"] = round(run["requests_per_s"] / reference, 3)
    result = {"users": args.users, "items": args.items, "seconds": args.seconds,
              "rounds": results}
    work.mkdir(parents=True, exist_ok=True)
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
