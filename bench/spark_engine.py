"""Benchmark: the Spark engine beside the local engine, at several sizes.

For each size, a generated store is split by time (the first 85% trains; the rest, of at
most 50,000 shoppers drawn once, is held out); `recsvc train --no-tune` runs with
`--engine local` and with `--engine spark` in fresh processes, one after the other, and
`recsvc evaluate` scores each model's blend on the held-out events (recall@10: parity).
Memory is sampled from the process tree every 0.2 s: the driver's Python, the JVM (in
local mode the driver's and the executors' heap live there) and Spark's Python workers,
each at its peak. `--reuse` keeps a size's trained models and their figures.

    .venv/bin/python bench/spark_engine.py --sizes 1000000,5000000,20000000 \\
        --master 'local[2]' --json /tmp/spark-bench.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

HERE = Path(__file__).resolve().parent


def measured(cmd: list[str]) -> dict:
    """Run `cmd`; wall seconds and the peak RSS (MiB) of each kind of process in its tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = {"driver_mib": 0.0, "jvm_mib": 0.0, "workers_mib": 0.0, "total_mib": 0.0}
    while proc.poll() is None:
        now = {"driver_mib": 0.0, "jvm_mib": 0.0, "workers_mib": 0.0}
        try:
            tree = [root, *root.children(recursive=True)]
            for p in tree:
                rss = p.memory_info().rss / 2**20
                if p.pid == root.pid:
                    now["driver_mib"] += rss
                elif "java" in p.name():
                    now["jvm_mib"] += rss
                else:
                    now["workers_mib"] += rss
        except psutil.Error:
            pass
        now["total_mib"] = sum(now.values())
        peak = {k: max(peak[k], now[k]) for k in peak}
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-4000:]}")
    return {"seconds": round(time.perf_counter() - start, 1), "stdout": out, "stderr": err,
            **{k: round(v) for k, v in peak.items()}}


def split(store: Path, out: Path, test_users: int) -> tuple[Path, Path]:
    """The first 85% by time trains; the rest, of at most `test_users` shoppers drawn
    with a fixed seed (the same for both engines), tests."""
    events = pd.read_csv(store / "interactions.csv", dtype=str)
    times = pd.to_datetime(events["timestamp"], format="ISO8601", utc=True, errors="coerce")
    cut = times.quantile(0.85)
    events[times < cut].to_csv(out / "train.csv", index=False)
    test = events[times >= cut]
    users = test["user_id"].unique()
    if users.size > test_users:
        drawn = np.random.default_rng(0).choice(users, test_users, replace=False)
        test = test[test["user_id"].isin(drawn)]
    test.to_csv(out / "test.csv", index=False)
    return out / "train.csv", out / "test.csv"


def stage_seconds(stderr: str) -> dict[str, float]:
    """Per-stage seconds from the trainer's `event=NAME.done seconds=S` lines."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("event", "").endswith(".done") and "seconds" in fields:
            out[fields["event"][:-5]] = float(fields["seconds"])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000000", help="events per store, comma-separated")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--engines", default="local,spark", help="which engines, comma-separated")
    p.add_argument("--driver-memory", default="8g")
    p.add_argument("--work", type=Path, default=Path("/tmp/spark-bench"))
    p.add_argument("--json", type=Path)
    p.add_argument("--test-users", type=int, default=50_000,
                   help="held-out shoppers scored, at most (drawn once per size)")
    p.add_argument("--reuse", action="store_true",
                   help="keep a size's models and training figures from an earlier run "
                   "(an evaluation that failed is then run again, not the training)")
    args = p.parse_args()
    recsvc = [sys.executable, "-m", "recsvc"]
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        work = args.work / str(size)
        work.mkdir(parents=True, exist_ok=True)
        store = work / "store"
        if not (store / "interactions.csv").exists():
            subprocess.run([*recsvc, "generate", "--out", str(store), "--events", str(size),
                            "--users", str(size // 10), "--items", str(max(size // 100, 500)),
                            "--seed", "1"], check=True, capture_output=True)
        train, test = split(store, work, args.test_users)
        config = work / "spark.toml"
        config.write_text(f'[spark]\nmaster = "{args.master}"\n'
                          f'driver_memory = "{args.driver_memory}"\n')
        for engine in args.engines.split(","):
            root = work / f"models-{engine}"
            trained = work / f"{engine}-train.json"
            if args.reuse and trained.exists() and (root / "current").exists():
                run = json.loads(trained.read_text())
            else:
                run = measured([*recsvc, "train", "--engine", engine, "--config",
                                str(config), "--interactions", str(train), "--items",
                                str(store / "items.csv"), "--users",
                                str(store / "users.csv"), "--model-root", str(root),
                                "--no-tune"])
                trained.write_text(json.dumps(run))
            scored = work / f"{engine}.json"
            subprocess.run([*recsvc, "evaluate", "--model-root", str(root), "--test", str(test),
                            "--k", "10", "--algorithms", "blend", "--json", str(scored),
                            "--no-report", "--quiet"],
                           check=True, capture_output=True)
            metrics = json.loads(scored.read_text())
            row = {"events": size, "engine": engine, "seconds": run["seconds"],
                   **{k: v for k, v in run.items() if k.endswith("_mib")},
                   "recall@10": metrics["recall@10"], "ndcg@10": metrics["ndcg@10"],
                   "stages": stage_seconds(run["stderr"])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
