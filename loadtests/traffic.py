"""Simulated shoppers for the demo's dashboard: each asks the running service for a list,
clicks what matches their tastes (the departments they bought from most in the store's
history) and buys some of it, reporting every step with the list's recommendation id,
as a storefront would. The numbers `recsvc report` then shows mean something.

    .venv/bin/python loadtests/traffic.py --url http://127.0.0.1:8000 --store demo/data \
        [--shoppers 400] [--seed 1] [--client-key KEY]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd


def tastes(store: Path) -> tuple[dict[str, set[str]], dict[str, str], dict[str, float]]:
    """Each shopper's two favourite departments, each item's department and price."""
    items = pd.read_csv(store / "items.csv")
    department = {str(i): str(c).split(" > ")[0] for i, c in zip(items["item_id"],
                                                                  items["category"],
                                                                  strict=True)}
    price = {str(i): float(p) for i, p in zip(items["item_id"], items["price"], strict=True)}
    events = pd.read_csv(store / "interactions.csv", usecols=["user_id", "item_id"])
    favourite: dict[str, Counter[str]] = {}
    for user, item in zip(events["user_id"].astype(str), events["item_id"].astype(str),
                          strict=True):
        favourite.setdefault(user, Counter())[department.get(item, "")] += 1
    return ({u: {d for d, _ in c.most_common(2)} for u, c in favourite.items()}, department,
            price)


def simulate(url: str, store: Path, shoppers: int, seed: int,
             headers: dict[str, str]) -> Counter[str]:
    likes, department, price = tastes(store)
    rng = random.Random(seed)
    users = rng.sample(sorted(likes), min(shoppers, len(likes)))
    done: Counter[str] = Counter()
    with httpx.Client(base_url=url, timeout=30, headers=headers) as http:
        for user in users:
            for placement in ("home", "cart"):
                body = http.get("/recommend", params={"user_id": user, "n": 8,
                                                      "placement": placement}).json()
                done["lists"] += 1
                events = []
                for position, item in enumerate(body.get("items", []), start=1):
                    liked = department.get(item["item_id"]) in likes[user]
                    # Shoppers look at the top first, and click what they like.
                    if rng.random() < (0.12 if liked else 0.01) / position ** 0.5:
                        events.append({"user_id": user, "item_id": item["item_id"],
                                       "event_type": "click",
                                       "recommendation_id": body["recommendation_id"]})
                        if rng.random() > (0.5 if liked else 0.2):
                            continue  # looked, and left it
                        events.append({"user_id": user, "item_id": item["item_id"],
                                       "event_type": "add_to_cart",
                                       "recommendation_id": body["recommendation_id"]})
                        if rng.random() < 0.6:
                            events.append({"user_id": user, "item_id": item["item_id"],
                                           "event_type": "purchase",
                                           "value": rng.choice((1, 1, 2)),
                                           "price": price.get(item["item_id"], 10.0),
                                           "recommendation_id": body["recommendation_id"]})
                if events:
                    answer = http.post("/events", json=events)
                    answer.raise_for_status()
                    done["events"] += answer.json()["accepted"]
    return done


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--store", type=Path, required=True, help="a generated store's directory")
    p.add_argument("--shoppers", type=int, default=400)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--client-key", help="X-Client-Key, when the service requires one")
    args = p.parse_args()
    headers = {"X-Client-Key": args.client_key} if args.client_key else {}
    done = simulate(args.url, args.store, args.shoppers, args.seed, headers)
    print(f"{done['lists']:,} lists served, {done['events']:,} events sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
