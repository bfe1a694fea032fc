"""A synthetic store for demos, tests and benchmarks: deterministic for a seed.

Users have latent tastes (a favourite and a second department), a segment that sets their
price range, and a region; items have departments, categories, brands, text, prices,
stock and arrival dates, and power-law popularity within their category. Shoppers browse
in a funnel (view -> cart -> purchase), buy again, rate, review and sometimes refund; new
items keep arriving; a few bots hammer the site. Events are written in chunks of users,
so 1M users and 10M events fit in a few GB of memory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from training.progress import Progress

DEPARTMENTS: dict[str, dict[str, list[str]]] = {
    "Home": {"Lighting": ["lamp", "lantern", "bulb"], "Decor": ["vase", "frame", "candle"],
             "Textiles": ["cushion", "throw", "curtain"]},
    "Kitchen": {"Cookware": ["pan", "pot", "wok"], "Tableware": ["plate", "bowl", "mug"],
                "Storage": ["jar", "tin", "box"]},
    "Garden": {"Tools": ["trowel", "rake", "shears"], "Plants": ["seeds", "bulbs", "planter"],
               "Outdoor": ["bench", "parasol", "lantern"]},
    "Electronics": {"Audio": ["headphones", "speaker", "radio"],
                    "Computing": ["keyboard", "mouse", "monitor"],
                    "Phones": ["charger", "case", "cable"]},
    "Toys": {"Games": ["puzzle", "boardgame", "cards"], "Plush": ["bear", "bunny", "dog"],
             "Building": ["blocks", "bricks", "kit"]},
    "Books": {"Fiction": ["novel", "thriller", "saga"], "Cooking": ["cookbook", "recipes",
              "guide"], "Kids": ["picturebook", "storybook", "atlas"]},
    "Fashion": {"Shoes": ["sneakers", "boots", "sandals"], "Bags": ["tote", "backpack",
                "wallet"], "Accessories": ["scarf", "hat", "belt"]},
    "Sports": {"Fitness": ["dumbbell", "mat", "band"], "Cycling": ["helmet", "pump", "light"],
               "Running": ["shorts", "socks", "bottle"]},
}
ADJECTIVES = ["classic", "modern", "vintage", "compact", "deluxe", "eco", "premium", "soft",
              "bright", "rustic", "smart", "handmade", "travel", "family", "mini", "large"]
SEGMENTS = ["budget", "regular", "premium"]
REGIONS = ["north", "south", "east", "west", "central"]
DAY = 86_400


def today() -> int:
    """The start of today (UTC), epoch seconds: a generated store ends there by default,
    so the service's events of today come after it and the nightly job can train on them."""
    return int(time.time()) // DAY * DAY


@dataclass(frozen=True)
class StoreSpec:
    users: int = 2000
    items: int = 500
    events: int = 100_000
    seed: int = 0
    days: int = 180
    end: int | None = None  # epoch seconds; None: the start of today (UTC)
    bot_share: float = 0.02
    consent_false_share: float = 0.02
    repeat_probability: float = 0.3


@dataclass
class Catalog:
    department: np.ndarray  # per item
    category: np.ndarray  # per item, index into category_names
    category_names: list[str]
    category_department: np.ndarray
    price: np.ndarray
    created_at: np.ndarray
    popularity: np.ndarray  # within-category weight
    by_category: list[np.ndarray]  # items of each category, most popular first
    cdf: list[np.ndarray]  # cumulative popularity within each category


def _make_catalog(spec: StoreSpec, rng: np.random.Generator, end: int
                  ) -> tuple[Catalog, pa.Table]:
    start = end - spec.days * DAY
    departments = list(DEPARTMENTS)
    names, cat_dept, nouns = [], [], []
    for d, dept in enumerate(departments):
        for cat, words in DEPARTMENTS[dept].items():
            names.append(f"{dept} > {cat}")
            cat_dept.append(d)
            nouns.append(words)
    cat_dept_arr = np.asarray(cat_dept)
    n = spec.items
    cat_weights = rng.dirichlet(np.full(len(names), 3.0))
    category = rng.choice(len(names), size=n, p=cat_weights)
    department = cat_dept_arr[category]
    brands_per_dept = 6
    brand_idx = rng.integers(0, brands_per_dept, size=n)
    brand = np.char.add(np.char.add(np.asarray(departments)[department].astype(str), "co "),
                        brand_idx.astype(str))
    dept_price = np.exp(rng.normal(3.0, 0.6, size=len(departments)))
    price = np.round(dept_price[department] * np.exp(rng.normal(0, 0.5, size=n)), 2)
    # 70% of the catalog exists at the start; the rest arrives over the period.
    arrives = rng.random(n) < 0.3
    created = np.where(arrives, start + (rng.random(n) * (end - start)).astype(np.int64),
                       start - rng.integers(0, 365 * DAY, size=n))
    popularity = 1.0 / np.power(rng.permutation(n) % 50 + 1.0, 1.1) * rng.lognormal(0, 0.5, n)
    noun = np.array([nouns[c][i % len(nouns[c])] for i, c in
                     zip(rng.integers(0, 3, size=n), category, strict=True)])
    adjective = np.asarray(ADJECTIVES)[rng.integers(0, len(ADJECTIVES), size=n)]
    ids = np.char.add("I", np.arange(n).astype(str))
    title = [f"{a} {b} {w}" for a, b, w in zip(adjective, brand, noun, strict=True)]
    cat_names = np.asarray(names)[category]
    description = [f"A {a} {w} for your {c.split(' > ')[1].lower()}, by {b}."
                   for a, w, c, b in zip(adjective, noun, cat_names, brand, strict=True)]
    tags = [f"{w}|{c.split(' > ')[0].lower()}|{a}"
            for w, c, a in zip(noun, cat_names, adjective, strict=True)]
    in_stock = rng.random(n) >= 0.05
    table = pa.table({
        "item_id": ids, "title": title, "description": description, "category": cat_names,
        "brand": brand, "price": price, "tags": tags, "in_stock": in_stock,
        "created_at": pa.array(created.astype("datetime64[s]")).cast(pa.timestamp("s", "UTC")),
    })
    by_category, cdf = [], []
    for c in range(len(names)):
        members = np.flatnonzero(category == c)
        members = members[np.argsort(-popularity[members], kind="stable")]
        by_category.append(members)
        w = popularity[members]
        cdf.append(np.cumsum(w) / w.sum() if len(w) else w)
    return Catalog(department, category, names, cat_dept_arr, price, created, popularity,
                   by_category, cdf), table


BOT_EVENTS = 2000  # views per bot, all in one day


def _bots(spec: StoreSpec, rng: np.random.Generator) -> np.ndarray:
    """A few bots, making about `bot_share` of all events."""
    n_bots = min(spec.users // 50, int(round(spec.bot_share * spec.events / BOT_EVENTS)))
    bots = np.zeros(spec.users, dtype=bool)
    bots[rng.choice(spec.users, size=max(n_bots, 0), replace=False)] = True
    return bots


def _make_users(spec: StoreSpec, rng: np.random.Generator, n_depts: int) -> dict[str, np.ndarray]:
    n = spec.users
    primary = rng.integers(0, n_depts, size=n)
    secondary = (primary + rng.integers(1, n_depts, size=n)) % n_depts
    return {
        "user_id": np.char.add("U", np.arange(n).astype(str)),
        "primary": primary,
        "secondary": secondary,
        "segment": rng.choice(3, size=n, p=[0.35, 0.45, 0.2]),
        "region": rng.integers(0, len(REGIONS), size=n),
        "tier": rng.choice(2, size=n, p=[0.8, 0.2]),
        "consent": rng.random(n) >= spec.consent_false_share,
        "activity": rng.lognormal(0.0, 1.0, size=n),
        "bot": _bots(spec, rng),
    }


def _pick_items(catalog: Catalog, categories: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(categories.size, dtype=np.int64)
    for c in np.unique(categories):
        rows = np.flatnonzero(categories == c)
        members = catalog.by_category[c]
        if members.size == 0:  # an empty category: fall back to any item
            out[rows] = rng.integers(0, catalog.category.size, size=rows.size)
            continue
        pos = np.searchsorted(catalog.cdf[c], rng.random(rows.size))
        out[rows] = members[np.minimum(pos, members.size - 1)]
    return out


def _chunk_events(
    spec: StoreSpec, catalog: Catalog, users: dict[str, np.ndarray], lo: int, hi: int,
    views: np.ndarray, rng: np.random.Generator, end: int,
) -> pa.Table:
    n_depts = int(catalog.category_department.max()) + 1
    start = end - spec.days * DAY
    user = np.repeat(np.arange(lo, hi), views)
    t = start + (rng.random(user.size) * (end - start)).astype(np.int64)
    r = rng.random(user.size)
    dept = np.where(r < 0.6, users["primary"][user],
                    np.where(r < 0.85, users["secondary"][user],
                             rng.integers(0, n_depts, size=user.size)))
    cats_of = [np.flatnonzero(catalog.category_department == d) for d in range(n_depts)]
    category = np.empty(user.size, dtype=np.int64)
    for d in range(n_depts):
        rows = np.flatnonzero(dept == d)
        category[rows] = rng.choice(cats_of[d], size=rows.size)
    item = _pick_items(catalog, category, rng)
    # A shopper cannot see an item before it arrives: such views move after its arrival.
    late = catalog.created_at[item] > t
    t[late] = catalog.created_at[item[late]] + (
        rng.random(int(late.sum())) * (end - catalog.created_at[item[late]])).astype(np.int64)
    # Price fit: budget shoppers cart cheap items more, premium ones dear items.
    rel_price = np.log(catalog.price[item] / np.median(catalog.price))
    segment = users["segment"][user]
    fit = np.clip(1.0 + 0.5 * rel_price * (segment - 1), 0.3, 1.7)
    taste = np.where(dept == users["primary"][user], 1.3, 0.8)
    cart = rng.random(user.size) < np.clip(0.22 * fit * taste, 0, 0.9)
    buy = cart & (rng.random(user.size) < 0.5)
    kind = np.where(rng.random(user.size) < 0.15, "click", "view")

    parts_user, parts_item, parts_kind, parts_t, parts_value = (
        [user], [item], [kind], [t], [np.full(user.size, np.nan)])

    def add(mask_rows: np.ndarray, event: str, times: np.ndarray, values: np.ndarray) -> None:
        parts_user.append(user[mask_rows])
        parts_item.append(item[mask_rows])
        parts_kind.append(np.full(mask_rows.size, event))
        parts_t.append(times)
        parts_value.append(values)

    cart_rows = np.flatnonzero(cart)
    add(cart_rows, "add_to_cart", t[cart_rows] + rng.integers(5, 600, cart_rows.size),
        np.full(cart_rows.size, np.nan))
    buy_rows = np.flatnonzero(buy)
    buy_t = t[buy_rows] + rng.integers(600, 3600, buy_rows.size)
    quantity = rng.geometric(0.7, size=buy_rows.size).astype(float)
    add(buy_rows, "purchase", buy_t, quantity)
    # Repeat purchases: some items are bought again, a few weeks later.
    again = rng.random(buy_rows.size) < spec.repeat_probability
    for _ in range(2):
        gap = (rng.exponential(20.0, size=buy_rows.size) * DAY).astype(np.int64) + DAY
        buy_t = buy_t + gap
        ok = again & (buy_t < end)
        add(buy_rows[ok], "purchase", buy_t[ok], quantity[ok])
        again &= rng.random(buy_rows.size) < 0.5
    follow = rng.random(buy_rows.size)
    first_buy_t = t[buy_rows] + 3600
    rated = follow < 0.15
    liked = dept[buy_rows] == users["primary"][user[buy_rows]]
    stars = np.where(liked, rng.integers(4, 6, buy_rows.size), rng.integers(1, 5, buy_rows.size))
    add(buy_rows[rated], "rating", first_buy_t[rated] + rng.integers(DAY, 14 * DAY,
        int(rated.sum())), stars[rated].astype(float))
    reviewed = (follow >= 0.15) & (follow < 0.2)
    add(buy_rows[reviewed], "review", first_buy_t[reviewed] + rng.integers(
        DAY, 14 * DAY, int(reviewed.sum())), np.full(int(reviewed.sum()), np.nan))
    refunded = (follow >= 0.2) & (follow < 0.23)
    add(buy_rows[refunded], "refund", first_buy_t[refunded] + rng.integers(
        DAY, 10 * DAY, int(refunded.sum())), quantity[refunded])

    all_t = np.concatenate(parts_t)
    all_u = np.concatenate(parts_user)
    order = np.argsort(all_t, kind="stable")
    keep = all_t[order] < end
    order = order[keep]
    return pa.table({
        "user_id": users["user_id"][all_u[order]],
        "item_id": np.char.add("I", np.concatenate(parts_item)[order].astype(str)),
        "event_type": np.concatenate(parts_kind)[order],
        "timestamp": pa.array(all_t[order].astype("datetime64[s]")).cast(
            pa.timestamp("s", "UTC")),
        "value": pa.array(np.concatenate(parts_value)[order], from_pandas=True),
    })


def _bot_events(users: dict[str, np.ndarray], catalog: Catalog, rng: np.random.Generator,
                start: int, end: int) -> pa.Table | None:
    bots = np.flatnonzero(users["bot"])
    if bots.size == 0:
        return None
    per_bot = BOT_EVENTS
    existing = np.flatnonzero(catalog.created_at <= start)  # bots crawl the old catalog
    if existing.size == 0:
        existing = np.arange(catalog.created_at.size)
    user = np.repeat(bots, per_bot)
    day_start = start + rng.integers(0, max(1, (end - start) // DAY - 1), bots.size) * DAY
    t = np.repeat(day_start, per_bot) + rng.integers(0, DAY, user.size)
    return pa.table({
        "user_id": users["user_id"][user],
        "item_id": np.char.add("I", rng.choice(existing, user.size).astype(str)),
        "event_type": np.full(user.size, "view"),
        "timestamp": pa.array(t.astype("datetime64[s]")).cast(pa.timestamp("s", "UTC")),
        "value": pa.nulls(user.size, pa.float64()),
    })


# Events written per view drawn, on average (views, carts, purchases, repeats, follow-ups).
EVENTS_PER_VIEW = 1.42
CHUNK_USERS = 50_000


def generate_store(spec: StoreSpec, out: str | Path, progress: Progress | None = None
                   ) -> dict[str, Path]:
    """Write interactions.csv, items.csv and users.csv under `out`; return their paths."""
    progress = progress or Progress()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    end = today() if spec.end is None else int(spec.end)
    catalog, items_table = _make_catalog(spec, rng, end)
    users = _make_users(spec, rng, len(DEPARTMENTS))
    paths = {name: out / f"{name}.csv" for name in ("interactions", "items", "users")}
    pcsv.write_csv(items_table, paths["items"])
    pcsv.write_csv(pa.table({
        "user_id": users["user_id"],
        "segment": np.asarray(SEGMENTS)[users["segment"]],
        "region": np.asarray(REGIONS)[users["region"]],
        "tier": np.asarray(["basic", "plus"])[users["tier"]],
        "consent": users["consent"],
    }), paths["users"])

    # Views per user: proportional to activity, for the requested total of events.
    n_bot_events = int(users["bot"].sum()) * BOT_EVENTS
    n_views = max(1, int((spec.events - n_bot_events) / EVENTS_PER_VIEW))
    weights = users["activity"] * ~users["bot"]
    views = rng.multinomial(n_views, weights / weights.sum())
    written = 0
    schema = None
    with progress.step("generate", total=(spec.users + CHUNK_USERS - 1) // CHUNK_USERS,
                       users=spec.users, items=spec.items) as step:
        writer = None
        try:
            for lo in range(0, spec.users, CHUNK_USERS):
                hi = min(spec.users, lo + CHUNK_USERS)
                chunk_rng = np.random.default_rng([spec.seed, lo])
                table = _chunk_events(spec, catalog, users, lo, hi, views[lo:hi], chunk_rng, end)
                if writer is None:
                    schema = table.schema
                    writer = pcsv.CSVWriter(paths["interactions"], schema)
                writer.write_table(table.cast(schema))
                written += table.num_rows
                step.advance()
            bots = _bot_events(users, catalog, rng, end - spec.days * DAY, end)
            if bots is not None and writer is not None:
                writer.write_table(bots.cast(schema))
                written += bots.num_rows
        finally:
            if writer is not None:
                writer.close()
        step.note(events=written)
    return paths
