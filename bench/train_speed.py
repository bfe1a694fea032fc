"""Benchmark: `recsvc train --no-tune` against a bare implicit ALS fit on the same matrix.

Both run in fresh processes, one after the other, on the same generated store; the ratio
of their wall times is the figure (this machine is noisy: compare ratios, not seconds).
Peak memory (max RSS) of each process is recorded beside it.

    .venv/bin/python bench/train_speed.py --events 5000000 --users 500000 --items 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

BARE_ALS = r"""
import sys, time, json
import numpy as np
from threadpoolctl import threadpool_limits
from implicit.cpu.als import AlternatingLeastSquares
from recsvc.core.model import load_model
model = load_model(sys.argv[1], verify=False)
matrix = model.user_items.copy()          # the very matrix recsvc trained on
matrix.data = np.log1p(matrix.data)       # with the same confidence compression
params = model.manifest.algorithms["cf"].params
with threadpool_limits(1, "blas"):
    als = AlternatingLeastSquares(factors=params["factors"], iterations=params["iterations"],
                                  regularization=params["regularization"],
                                  alpha=params["alpha"], random_state=0)
    t0 = time.perf_counter()
    als.fit(matrix, show_progress=False)
    print(json.dumps({"fit_seconds": time.perf_counter() - t0}))
"""


# Runs a command in a fresh process and reports its own child's peak RSS, so that each
# measured process has its own figure (RUSAGE_CHILDREN keeps the maximum of all children).
MEASURE = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True).stdout
print(json.dumps({"seconds": time.perf_counter() - t0, "stdout": out,
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))
"""


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MiB) of the process, and its stdout."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *cmd], check=True,
                          capture_output=True, text=True)
    result = json.loads(done.stdout)
    return result["seconds"], result["peak_mib"], result["stdout"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=500_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path("bench/results/train_speed"))
    p.add_argument("--repeat", type=int, default=3,
                   help="alternate the two runs this many times; medians are reported")
    p.add_argument("--config", type=Path,
                   help="trainer TOML, e.g. [model] algorithms = [...] for a narrower fit")
    args = p.parse_args()
    store = args.workdir / f"store-{args.users}-{args.items}-{args.events}-{args.seed}"
    recsvc = [sys.executable, "-m", "recsvc"]
    if not (store / "interactions.csv").exists():
        subprocess.run([*recsvc, "generate", "--out", str(store), "--users", str(args.users),
                        "--items", str(args.items), "--events", str(args.events),
                        "--seed", str(args.seed)], check=True, capture_output=True)
    root = args.workdir / "models"
    runs = []
    for _ in range(args.repeat):
        train_s, train_mib, version = run([
            *recsvc, "train", "--interactions", str(store / "interactions.csv"),
            "--items", str(store / "items.csv"), "--users", str(store / "users.csv"),
            "--model-root", str(root), "--no-tune", "--quiet",
            *(["--config", str(args.config)] if args.config else [])])
        bare_s, bare_mib, out = run([sys.executable, "-c", BARE_ALS, str(root)])
        fit_s = json.loads(out)["fit_seconds"]
        runs.append({"train_s": round(train_s, 2), "train_peak_mib": train_mib,
                     "bare_fit_s": round(fit_s, 2), "bare_process_s": round(bare_s, 2),
                     "bare_peak_mib": bare_mib, "ratio": round(train_s / fit_s, 3)})
    manifest = json.loads((root / version.strip() / "manifest.json").read_text())
    quality = manifest["data_quality"]
    result = {
        "events_read": quality["rows_read"], "events_kept": quality["rows_kept"],
        "users": manifest["counts"]["users"], "items": manifest["counts"]["items"],
        "median": {k: statistics.median(r[k] for r in runs) for k in runs[0]},
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
