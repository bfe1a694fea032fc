"""Load test of a running service over real HTTP, as a storefront uses it.

    .venv/bin/locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 50 -r 10 -t 1m

Shoppers are drawn from `RECSVC_LOAD_USERS` ids `U0..U{n-1}` (the id scheme of
`recsvc generate`; default 3000, the demo store) and items from `RECSVC_LOAD_ITEMS`
(`I0..`; default 800). A page view asks for recommendations; some shoppers open a
product page, and some of those add to cart or buy (events that change their next list).
Anonymous sessions browse with `recent_items`. Locust reports latency percentiles and
failures per endpoint; any non-2xx answer is a failure.
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, task

USERS = int(os.environ.get("RECSVC_LOAD_USERS", "3000"))
ITEMS = int(os.environ.get("RECSVC_LOAD_ITEMS", "800"))


class Shopper(FastHttpUser):
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.user_id = f"U{random.randrange(USERS)}"

    @task(10)
    def home_page(self) -> None:
        with self.client.get(f"/recommend?user_id={self.user_id}&n=10",
                             name="/recommend", catch_response=True) as response:
            if response.status_code == 200 and not response.json()["items"]:
                response.failure("an empty list")

    @task(3)
    def product_page(self) -> None:
        item = f"I{random.randrange(ITEMS)}"
        self.client.get(f"/similar/{item}?n=8", name="/similar/{item_id}")
        self.client.post("/events", json={"user_id": self.user_id, "item_id": item,
                                          "event_type": "view"}, name="/events")
        if random.random() < 0.2:
            self.client.post("/events", json={"user_id": self.user_id, "item_id": item,
                                              "event_type": random.choice(
                                                  ["add_to_cart", "purchase"])},
                             name="/events")

    @task(2)
    def category_page(self) -> None:
        self.client.get("/popular?n=10", name="/popular")

    @task(1)
    def anonymous_session(self) -> None:
        recent = ",".join(f"I{random.randrange(ITEMS)}" for _ in range(3))
        self.client.get(f"/recommend?recent_items={recent}&n=10",
                        name="/recommend (anonymous)")
