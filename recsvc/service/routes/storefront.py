"""What a storefront calls: a shopper's list, related items, popular items, and the
events it reports."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field

from recsvc.service.deps import CallerDep, StateDep
from recsvc.service.query import openapi_parameters, parse_recommend
from recsvc.service.routes import answers
from recsvc.service.schemas import (
    EventIn,
    EventsAccepted,
    PopularResponse,
    RecommendResponse,
    SimilarResponse,
)
from recsvc.service.usecases.browse import popular_body, similar_body
from recsvc.service.usecases.events import record_events
from recsvc.service.usecases.recommend import recommend_body

router = APIRouter(tags=["storefront"])
# The shopper looking, and where the list is shown: logged with the impression, so that
# what they do next is attributed to it.
Viewer = Annotated[str | None, Query(min_length=1, max_length=256,
                                     description="the shopper viewing (for attribution)")]
Placement = Annotated[str | None, Query(min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9_.:-]+$",
                                        description="where the list is shown")]
JSON = "application/json"


@router.get("/recommend", response_model=RecommendResponse,
            responses=answers(401, 403, 404, 422, 429, 503),
            openapi_extra={"parameters": openapi_parameters()})
async def recommend(request: Request, state: StateDep, caller: CallerDep) -> Response:
    """Top-n items for a shopper, each with reason codes. Without `user_id`, for an
    anonymous session (give `recent_items`) or a stranger (`segment`, `region`); with a
    shopper token, for its shopper only (`user_id` may be left out)."""
    query = parse_recommend(request.scope["query_string"])
    return Response(await recommend_body(state, query, caller), media_type=JSON)


@router.get("/similar/{item_id}", response_model=SimilarResponse,
            responses=answers(401, 404, 422, 429, 503))
async def similar(
    state: StateDep,
    caller: CallerDep,
    item_id: Annotated[str, Path(min_length=1, max_length=256)],
    n: Annotated[int, Query(ge=1, le=100)] = 10,
    user_id: Viewer = None,
    placement: Placement = None,
) -> Response:
    """Related items for a product page."""
    return Response(await similar_body(state, item_id, n, caller.viewer(user_id), placement),
                    media_type=JSON)


@router.get("/popular", response_model=PopularResponse,
            responses=answers(401, 404, 422, 429, 503))
async def popular(
    state: StateDep,
    caller: CallerDep,
    n: Annotated[int, Query(ge=1, le=100)] = 10,
    category: Annotated[str | None, Query(max_length=512)] = None,
    segment: Annotated[str | None, Query(max_length=128)] = None,
    region: Annotated[str | None, Query(max_length=128)] = None,
    user_id: Viewer = None,
    placement: Placement = None,
) -> Response:
    """Popular (overall, or in a segment/region) and trending items."""
    attributes = {k: v for k, v in (("segment", segment), ("region", region)) if v}
    return Response(popular_body(state, n, category, attributes, caller.viewer(user_id),
                                 placement),
                    media_type=JSON)


@router.post("/events", response_model=EventsAccepted,
             responses=answers(401, 403, 413, 422, 429, 503))
async def events(
    state: StateDep,
    caller: CallerDep,
    events: Annotated[EventIn | Annotated[list[EventIn], Field(min_length=1)], Body()],
) -> Response:
    """Record one event or a batch. Appended durably to the events log (the next
    training learns from it); the shopper's next list reflects it at once. An event
    with an `event_id` already recorded (a retry) is counted in `duplicates`, not
    recorded twice. Events of shoppers who were forgotten or do not consent to
    personalization are counted in `ignored`: nothing of them is kept. 503 when the
    log cannot be written: nothing was recorded; retry."""
    batch = events if isinstance(events, list) else [events]
    accepted, duplicates, ignored = await record_events(state, batch, caller)
    return Response(orjson.dumps({"accepted": accepted, "duplicates": duplicates,
                                  "ignored": ignored}), media_type=JSON)
