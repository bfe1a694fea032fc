"""What the dashboard shows, as plain data: the latest `recsvc report`, a shopper as the
service sees them, a product and where it is shown, and the model versions with the
nightly job's runs. The pages (`service.pages`) only lay these out."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from recsvc.core.lifecycle import describe_versions
from recsvc.core.lists import RecommendQuery
from recsvc.service.auth import Caller
from recsvc.service.state import ServiceState
from recsvc.service.usecases.browse import similar_body
from recsvc.service.usecases.recommend import recommend_body
from recsvc.service.usecases.shoppers import consent_of
from recsvc.stores.cache import decode_fresh, fresh_key
from recsvc.stores.events_log import EventLog
from recsvc.stores.impressions import PREFIX as IMPRESSIONS
from recsvc.stores.runs import latest_runs

OPERATOR = Caller("operator")
RECENT_FILES = 3  # how many of the newest log files a lookup reads


def latest_report(state: ServiceState) -> tuple[Path, dict[str, Any]] | None:
    """The newest report under STATE_DIR/reports (by its period's end, then start)."""
    reports = sorted((state.settings.paths.root / "reports").glob("*/report.json"),
                     key=lambda p: p.parent.name.split("-")[::-1])
    for path in reversed(reports):
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            return path, orjson.loads(path.read_bytes())
    return None


def _recent_lines(log: EventLog) -> list[dict[str, Any]]:
    out = []
    for path in log.files()[-RECENT_FILES:]:
        with contextlib.suppress(OSError), open(path, "rb") as f:
            for line in f:
                with contextlib.suppress(orjson.JSONDecodeError):
                    record = orjson.loads(line)
                    if isinstance(record, dict):
                        out.append(record)
    return out


async def shopper(state: ServiceState, user_id: str) -> dict[str, Any]:
    """Their consent, recent events (logged, and fresh in the cache), variant, and their
    list with reasons (not logged as an impression)."""
    settings = state.settings
    logged = [r for r in _recent_lines(EventLog(settings.paths.events_dir, 1 << 62))
              if r.get("user_id") == user_id][-20:]
    fresh = decode_fresh(await state.cache.fresh(fresh_key(settings.cache_namespace,
                                                          state.subject(user_id))))
    body = orjson.loads(await recommend_body(state, RecommendQuery(user_id=user_id, n=10),
                                             OPERATOR, log=False))
    model = state.engine.model
    return {"user_id": user_id, "known": bool(model.user_index([user_id])[0] >= 0),
            "consent": consent_of(state, user_id), "personal": state.personal(user_id),
            "variant": body["variant"], "items": body["items"], "events": logged[::-1],
            "fresh": [{"item_id": i, "weight": w, "ts": t, "event_type": k}
                      for i, w, t, k in fresh][::-1]}


async def product(state: ServiceState, item_id: str) -> dict[str, Any]:
    """The item, its related items, and how often the newest impressions showed it, by
    surface and position."""
    model = state.engine.model
    at = int(model.item_index([item_id])[0])
    if at < 0:
        return {"item_id": item_id, "known": False}
    related = orjson.loads(await similar_body(state, item_id, 10, log=False))["items"]
    surfaces: Counter[str] = Counter()
    positions: Counter[int] = Counter()
    shown = 0
    for record in _recent_lines(EventLog(state.settings.paths.impressions_dir, 1 << 62,
                                         prefix=IMPRESSIONS)):
        items = record.get("items") or []
        if item_id in items:
            shown += 1
            surfaces[str(record.get("surface"))] += 1
            positions[items.index(item_id) + 1] += 1
    live, price = state.live()
    category = int(model.item_category[at])
    return {"item_id": item_id, "known": True,
            "category": str(model.category_names[category]) if category >= 0 else None,
            "price": float(price[at]), "live": bool(live[at]), "related": related,
            "impressions": shown, "by_surface": dict(surfaces.most_common()),
            "by_position": dict(sorted(positions.items()))}


def models(state: ServiceState) -> dict[str, Any]:
    root = state.settings.model_root
    return {"serving": state.engine.version if state.has_engine else None,
            "problem": state.problem, "versions": describe_versions(root)[::-1],
            "runs": latest_runs(root, 10)}
