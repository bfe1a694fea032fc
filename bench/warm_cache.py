"""Benchmark: `recsvc warm-cache` throughput (users' lists written per second) for a
store of 100k users, into a private Redis, with one process and with one per CPU.

    .venv/bin/python bench/warm_cache.py [--users 100000] [--items 2000] [--events 2000000]
                                         [--list-size 100]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, prepare_store, redis_server

BIN = Path(sys.executable).parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=2_000)
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--list-size", type=int, default=None,
                   help="items per warmed list (RECSVC_CACHE_LIST_SIZE; default: the service's)")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    work = args.workdir or ROOT / f"bench/results/warm_cache_{args.users}u_{args.items}i"
    _, models = prepare_store(work, args.users, args.items, args.events, seed=4)
    recsvc = str(BIN / "recsvc")
    runs = {}
    env = dict(os.environ)
    if args.list_size:
        env["RECSVC_CACHE_LIST_SIZE"] = str(args.list_size)
    redis_proc, redis_url = redis_server()
    with redis_proc:
        for processes in (1, os.cpu_count() or 1):
            t0 = time.perf_counter()
            out = subprocess.run([recsvc, "warm-cache", "--model-root", str(models),
                                  "--redis-url", redis_url, "--users", "all", "--processes",
                                  str(processes)], check=True, capture_output=True,
                                 text=True, env=env).stdout
            wall = time.perf_counter() - t0
            written = int(re.search(r"warmed ([\d,]+) lists", out).group(1).replace(",", ""))
            rate = float(re.search(r"([\d,]+) users/s", out).group(1).replace(",", ""))
            runs[f"processes={processes}"] = {"written": written, "users_per_s": rate,
                                              "command_wall_s": round(wall, 1)}
            print(processes, runs[f"processes={processes}"], file=sys.stderr)
    result = {"users": args.users, "items": args.items, "events": args.events,
              "list_size": args.list_size or "default", "runs": runs}
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
