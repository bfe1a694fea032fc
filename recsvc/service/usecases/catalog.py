"""`PUT` / `PATCH /items/{id}`: operators' changes to an item's live state (stock,
delisting, price), which every worker applies from its next request."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from recsvc.service.errors import Invalid, NotFound
from recsvc.service.schemas import ItemUpdate
from recsvc.service.state import ServiceState


async def update_item(state: ServiceState, item_id: str, update: ItemUpdate,
                      replace: bool) -> dict[str, Any]:
    """Replace (`replace`) or merge the item's overrides; returns them."""
    engine = state.engine
    if engine.model.item_index([item_id])[0] < 0:
        raise NotFound(f"unknown item {item_id!r}: it joins at the next training")
    changes = update.model_dump(exclude_none=True)
    if not changes and not replace:
        raise Invalid("nothing to change (in_stock, delisted, price)", ("body",))
    entry = await run_in_threadpool(state.overrides.update, item_id, changes, replace)
    return {"item_id": item_id, **entry}
