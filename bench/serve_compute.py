"""Benchmark: compute-path (cache miss) latency of `GET /recommend` with a 100k-item
catalog and 64 factors, one uvicorn worker.

Every request asks for a shopper not asked before, so each one is computed: all the
model's algorithms scored over the whole catalog, blended, ranked, explained, packed
and cached. wrk with one connection measures latency without queueing; p50/p90/p99 come
from wrk's own histogram. The in-process time of the same computation is recorded
beside it.

    .venv/bin/python bench/serve_compute.py [--items 100000] [--users 200000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from harness import ROOT, Process, free_port, prepare_store, wrk

BIN = Path(sys.executable).parent


def in_process(models: Path, users: int, samples: int) -> dict[str, float]:
    from recsvc.core.engine import load_engine
    from recsvc.core.lists import RecommendQuery, shopper_list
    from recsvc.core.policy.filters import filter_stage
    from recsvc.core.policy.rules import DEFAULT_VARIANT, RulesFile
    from recsvc.stores.catalog import CatalogOverrides

    engine = load_engine(models, None, RulesFile())
    live, price = CatalogOverrides(models / "none.json").masks(engine.model)
    times = []
    for u in range(samples):
        query = RecommendQuery(user_id=f"U{(u * 7919) % users}", n=10)
        t0 = time.perf_counter()
        allowed = filter_stage(engine.model, engine.rules, live, price, query.filters).allowed
        shopper_list(engine, query, DEFAULT_VARIANT, [], live, allowed, 100, time.time(), 30)
        times.append(time.perf_counter() - t0)
    ms = np.array(times[10:]) * 1000  # the first few pay for lazy caches and page faults
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)}


def in_process_popular(models: Path, samples: int) -> dict[str, float]:
    """`GET /popular`'s lists (popular and trending) over the same catalog, in process."""
    from recsvc.core.engine import load_engine
    from recsvc.core.lists import popular_entries
    from recsvc.core.policy.rules import RulesFile
    from recsvc.stores.catalog import CatalogOverrides

    engine = load_engine(models, None, RulesFile())
    live, _ = CatalogOverrides(models / "none.json").masks(engine.model)
    out = {}
    for kind in ("popular", "trending"):
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            popular_entries(engine, kind, 10, live, {})
            times.append(time.perf_counter() - t0)
        out[f"{kind}_p50_ms"] = round(float(np.median(times[5:])) * 1000, 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--events", type=int, default=3_000_000)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--workdir", type=Path, default=ROOT / "bench/results/serve_compute")
    args = p.parse_args()
    work = args.workdir
    _, models = prepare_store(work, args.users, args.items, args.events, seed=5)
    recsvc = str(BIN / "recsvc")
    manifest = json.loads((models / "current" / "manifest.json").read_text())
    port = free_port()
    with Process([recsvc, "serve", "--model-root", str(models), "--port", str(port),
                  "--workers", "1", "--log-level", "warning"],
                 ready_url=f"http://127.0.0.1:{port}/readyz",
                 env={"RECSVC_STATE_DIR": str(work / "state")}):
        url = f"http://127.0.0.1:{port}"
        wrk(url, "/recommend?user_id=U", args.users, "&n=10", seconds=3, connections=1,
            sequential=True, start=args.users // 2)  # warm-up, on other users
        http = wrk(url, "/recommend?user_id=U", args.users // 2, "&n=10",
                   seconds=args.seconds, connections=1, sequential=True)
    result = {
        "items": manifest["counts"]["items"], "users": manifest["counts"]["users"],
        "factors": manifest["algorithms"]["cf"]["params"]["factors"],
        "algorithms": sorted(k for k, v in manifest["blend"]["weights"].items() if v),
        "http_one_connection": http,
        "in_process_compute": in_process(models, args.users, 300),
        "in_process_popular": in_process_popular(models, 50),
    }
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
