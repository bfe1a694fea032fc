"""Benchmark: `recsvc export` throughput (shoppers' top-10 lists written per second, to
CSV and to Parquet), against `recsvc warm-cache` in one process on the same model in the
same run (the same ranking, written to Redis instead of a file).

    .venv/bin/python bench/export.py [--users 1000000] [--items 2000] [--events 8000000]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, prepare_store, redis_server

BIN = Path(sys.executable).parent


def timed(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=2_000)
    p.add_argument("--events", type=int, default=8_000_000)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    work = args.workdir or ROOT / f"bench/results/export_{args.users}u_{args.items}i"
    _, models = prepare_store(work, args.users, args.items, args.events, seed=5)
    recsvc = str(BIN / "recsvc")
    runs = {}
    for fmt in ("csv", "parquet"):
        out = work / f"campaign.{fmt}"
        wall, printed = timed([recsvc, "export", "--model-root", str(models), "--state-dir",
                               str(work / "state"), "--out", str(out), "--n", "10",
                               "--purpose", "personalization"])
        shoppers = int(re.search(r"exported ([\d,]+) shoppers", printed).group(1)
                       .replace(",", ""))
        runs[fmt] = {"shoppers": shoppers, "command_wall_s": round(wall, 1),
                     "shoppers_per_s": round(shoppers / wall),
                     "file_mb": round(out.stat().st_size / 2**20, 1)}
        print(fmt, runs[fmt], file=sys.stderr)
    redis_proc, redis_url = redis_server()
    with redis_proc:
        wall, printed = timed([recsvc, "warm-cache", "--model-root", str(models),
                               "--redis-url", redis_url, "--users", "all",
                               "--processes", "1"])
    written = int(re.search(r"warmed ([\d,]+) lists", printed).group(1).replace(",", ""))
    runs["warm-cache (reference)"] = {"shoppers": written, "command_wall_s": round(wall, 1),
                                      "shoppers_per_s": round(written / wall)}
    reference = runs["warm-cache (reference)"]["shoppers_per_s"]
    for run in runs.values():
        run["ratio_to_warm_cache"] = round(run["shoppers_per_s"] / reference, 3)
    result = {"users": args.users, "items": args.items, "events": args.events, "runs": runs}
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
