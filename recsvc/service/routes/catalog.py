"""Operators' changes to the live catalog (operator key required)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path
from fastapi.responses import Response

from recsvc.service.deps import AdminDep, StateDep
from recsvc.service.routes import answers
from recsvc.service.schemas import ItemState, ItemUpdate
from recsvc.service.usecases.catalog import update_item

router = APIRouter(tags=["operators"], dependencies=[AdminDep])
ItemId = Annotated[str, Path(max_length=256)]


@router.put("/items/{item_id}", response_model=ItemState,
            responses=answers(401, 404, 409, 413, 422, 429, 503))
async def put_item(state: StateDep, item_id: ItemId, update: ItemUpdate) -> Response:
    """Replace an item's live catalog state (stock, delisting, price); for an item the
    model was not trained on, its attributes too: it is created, recommendable at once
    (409 when the model served cannot place a new item: it joins at the next
    training)."""
    entry = await update_item(state, item_id, update, replace=True)
    return Response(orjson.dumps(entry), media_type="application/json")


@router.patch("/items/{item_id}", response_model=ItemState,
              responses=answers(401, 404, 409, 413, 422, 429, 503))
async def patch_item(state: StateDep, item_id: ItemId, update: ItemUpdate) -> Response:
    """Change some of an item's live catalog state."""
    entry = await update_item(state, item_id, update, replace=False)
    return Response(orjson.dumps(entry), media_type="application/json")
