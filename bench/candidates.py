"""Benchmark: candidate generation at a million items against exact scoring.

On the model `bench/first_answer.py` trains (a generated store with a 1M-item catalog),
for shoppers not asked before: the compute path of `GET /recommend` in process
(`lists.shopper_list`: history, scoring, blending, rules, explanation, packing) with
exact scoring and with candidate generation, one after the other on the same shoppers;
latency percentiles of each, and the recall of the candidate path's top 10 against the
exact top 10 of the same shopper. The index build time is recorded too.

    .venv/bin/python bench/candidates.py --work /tmp/first-answer/1000000 --users 300000
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/first-answer/1000000"))
    p.add_argument("--users", type=int, default=300_000)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--ann-k", type=int, default=1000)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    from recsvc.core.engine import load_engine
    from recsvc.core.lists import RecommendQuery, shopper_list
    from recsvc.core.policy.filters import filter_stage
    from recsvc.core.policy.rules import DEFAULT_VARIANT, RulesFile
    from recsvc.core.ranking import candidates
    from recsvc.core.ranking.candidates import CandidatePath
    from recsvc.core.ranking.packed import unpack
    from recsvc.stores.catalog import CatalogOverrides

    models = args.work / "models"
    engine = load_engine(models, None, RulesFile())
    model = engine.model
    gc.collect()
    gc.freeze()  # as the service does after loading a model
    live, price = CatalogOverrides(models / "none.json").masks(model)
    rng = np.random.default_rng(7)
    shoppers = [f"U{u}" for u in rng.choice(args.users, args.samples + 10, replace=False)]

    def lists(label: str) -> tuple[list[list[str]], np.ndarray]:
        out, times = [], []
        for user in shoppers:
            query = RecommendQuery(user_id=user, n=10)
            t0 = time.perf_counter()
            allowed = filter_stage(model, engine.rules, live, price, query.filters).allowed
            packed, _ = shopper_list(engine, query, DEFAULT_VARIANT, [], live, allowed, 100,
                                     time.time(), 30)
            times.append(time.perf_counter() - t0)
            out.append(unpack(packed).items[:10].tolist())
        print(label, "done", flush=True)
        return out[10:], np.array(times[10:]) * 1000  # the first few fault pages in

    candidates.ABOVE = model.n_items + 1  # exact
    exact, exact_ms = lists("exact")
    t0 = time.perf_counter()
    model.__dict__["_candidate_path"] = CandidatePath.build(model, ann_k=args.ann_k)
    build_s = time.perf_counter() - t0
    candidates.ABOVE = 0
    got, got_ms = lists("candidates")
    recall = float(np.mean([len(set(a) & set(b)) / max(len(a), 1)
                            for a, b in zip(exact, got, strict=True)]))

    def pct(ms: np.ndarray) -> dict[str, float]:
        return {f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 90, 99)}

    result = {"items": model.n_items, "users": model.n_users, "shoppers": len(exact),
              "algorithms": sorted(k for k, v in model.weights.items() if v),
              "index_build_s": round(build_s, 1), "exact": pct(exact_ms),
              "candidates": pct(got_ms), "recall_at_10": round(recall, 4)}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
