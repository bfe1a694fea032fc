"""Benchmark: EASE on large catalogs (above `ease.max_items`, the neighbourhood-restricted
sparse form) against a bare implicit ALS fit on the same matrix.

For each catalog size a store is generated (5 users and 50 events per item, the shape of
bench/train_speed.py), `recsvc train --no-tune` with popularity alone writes the
trainer's own user x item matrix, then EASE and ALS (64 factors, 15 iterations) are
each fitted on that matrix in a fresh process: wall time of the fit, peak RSS of the
process, and the ratio EASE / ALS (this machine is noisy: compare ratios).

    .venv/bin/python bench/ease_scale.py --items 50000 100000 [--neighbours 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from train_speed import run  # noqa: E402  (bench/ is the script's directory)

FIT = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from recsvc.core.model import load_model
model = load_model(sys.argv[1], verify=False)
matrix = model.user_items.copy()
if sys.argv[2] == "ease":
    from recsvc.core.algorithms import EASE
    from recsvc.core.algorithms.base import TrainingData
    empty = np.zeros(0, np.int64)
    data = TrainingData(user_items=matrix, event_users=empty, event_items=empty,
                        event_weights=np.zeros(0, np.float32), event_times=empty,
                        reference_time=0)
    t0 = time.perf_counter()
    ease = EASE(neighbours=int(sys.argv[3])).fit(data)
    seconds = time.perf_counter() - t0
    print(json.dumps({"fit_seconds": seconds, "nnz": int(ease.weights.nnz)}))
else:
    from implicit.cpu.als import AlternatingLeastSquares
    matrix.data = np.log1p(matrix.data)
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=64, iterations=15, random_state=0)
        t0 = time.perf_counter()
        als.fit(matrix, show_progress=False)
    print(json.dumps({"fit_seconds": time.perf_counter() - t0}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, nargs="+", default=[50_000, 100_000])
    p.add_argument("--neighbours", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path("bench/results/ease_scale"))
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = args.workdir / "popularity-only.toml"
    config.write_text('[model]\nalgorithms = ["popularity"]\n')
    recsvc = [sys.executable, "-m", "recsvc"]
    results = []
    for items in args.items:
        users, events = 5 * items, 50 * items
        store = args.workdir / f"store-{users}-{items}-{events}-{args.seed}"
        if not (store / "interactions.csv").exists():
            subprocess.run([*recsvc, "generate", "--out", str(store), "--users", str(users),
                            "--items", str(items), "--events", str(events), "--seed",
                            str(args.seed)], check=True, capture_output=True)
        root = args.workdir / f"models-{items}"
        subprocess.run([*recsvc, "train", "--interactions", str(store / "interactions.csv"),
                        "--items", str(store / "items.csv"), "--model-root", str(root),
                        "--config", str(config), "--no-tune", "--quiet"], check=True,
                       capture_output=True)
        ease_s, ease_mib, out = run([sys.executable, "-c", FIT, str(root), "ease",
                                     str(args.neighbours)])
        ease = json.loads(out)
        als_s, als_mib, out = run([sys.executable, "-c", FIT, str(root), "als"])
        als = json.loads(out)
        manifest = json.loads((root / "current" / "manifest.json").read_text())
        results.append({
            "items": manifest["counts"]["items"], "users": manifest["counts"]["users"],
            "pairs": manifest["counts"]["interactions"], "neighbours": args.neighbours,
            "ease_fit_s": round(ease["fit_seconds"], 1), "ease_peak_mib": ease_mib,
            "ease_weights": ease["nnz"], "als_fit_s": round(als["fit_seconds"], 1),
            "als_peak_mib": als_mib,
            "ratio": round(ease["fit_seconds"] / als["fit_seconds"], 2)})
        print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
