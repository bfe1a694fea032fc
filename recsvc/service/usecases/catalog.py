"""`PUT` / `PATCH /items/{id}`: operators' changes to an item's live state (stock,
delisting, price), which every worker applies from its next request; and items created
since the training, recommendable at once (`stores.catalog`)."""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from recsvc.core.algorithms.content import ContentModel
from recsvc.service.errors import Conflict, Invalid, NotFound
from recsvc.service.schemas import ItemUpdate
from recsvc.service.state import ServiceState
from recsvc.stores.catalog import ATTRIBUTES

DESCRIBING = ("title", "description", "category")  # one of them makes an item


async def update_item(state: ServiceState, item_id: str, update: ItemUpdate,
                      replace: bool) -> dict[str, Any]:
    """Replace (`replace`) or merge the item's entry; returns it. An item the model was
    not trained on is created when described (title, description or category); an item
    it was trained on keeps its attributes until the next training."""
    engine = state.engine
    changes = update.model_dump(exclude_none=True)
    if "tags" in changes:
        changes["tags"] = "|".join(t.strip() for t in changes["tags"] if t.strip())
    described = [k for k in ATTRIBUTES if k in changes]
    trained = state.trained_item(item_id)
    await run_in_threadpool(state.overrides.refresh)
    current = state.overrides.get(item_id)
    created = "created_at" in current
    if trained and described:
        raise Invalid(f"item {item_id!r} was trained on: its {described[0]} changes at the "
                      "next training (here: in_stock, delisted, price, stock)",
                      ("body", described[0]))
    if not trained and not created:
        if not any(k in changes for k in DESCRIBING):
            raise NotFound(f"unknown item {item_id!r}: to create it, give its title, "
                           "description or category (and brand, price, tags, stock)")
        content = engine.model.components.get("content")
        if not isinstance(content, ContentModel) or content.vocabulary is None:
            raise Conflict("the model served has no content vocabulary to place a new item "
                           "by (trained without a catalog, or before it was kept): it joins "
                           "at the next training")
        changes["created_at"] = round(time.time(), 3)
    elif created:
        changes.setdefault("created_at", current["created_at"])  # PUT keeps its age
        if replace and not any(k in changes for k in DESCRIBING):
            raise Invalid("a created item keeps a title, description or category",
                          ("body",))
    if not changes and not replace:
        raise Invalid("nothing to change (in_stock, delisted, price, stock)", ("body",))
    entry = await run_in_threadpool(state.overrides.update, item_id, changes, replace)
    if "created_at" in entry:
        await state.follow_catalog()  # this worker serves it now; the others follow
    return {"item_id": item_id, **entry}
