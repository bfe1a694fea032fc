"""The HTTP API. Routes are thin: they validate parameters (FastAPI answers 422 with a
message), take the service state by dependency injection, call the plain functions of
`recsvc.recommend`, and return pre-serialized JSON.

Run with `recsvc serve`, or `uvicorn --factory recsvc.api:create_app` (settings from
`RECSVC_*` environment variables)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from threadpoolctl import threadpool_limits

from recsvc import __version__, telemetry
from recsvc.cache import decode_fresh, encode_fresh, fresh_key, list_key
from recsvc.errors import ModelError
from recsvc.fastpath import PlainRecommendFastPath
from recsvc.lists import select, unpack
from recsvc.recommend import (
    QueryError,
    RecommendQuery,
    allowed_items,
    compute_entries,
    items_payload,
    popular_entries,
    query_mask,
    similar_entries,
)
from recsvc.settings import Settings
from recsvc.state import NoModel, ServiceState

log = logging.getLogger("recsvc.api")


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json")


# -- response shapes, for the OpenAPI page --------------------------------------------

class RecommendParams(BaseModel):
    """The query of `GET /recommend`."""

    model_config = ConfigDict(extra="ignore")
    user_id: str | None = Field(None, min_length=1, max_length=256,
                                description="the shopper; absent: an anonymous session")
    n: int = Field(10, ge=1, le=100)
    exclude_seen: bool | None = Field(None, description="default: as learned in training")
    category: str | None = Field(None, max_length=512, description="this category and below")
    exclude: list[str] = Field(default_factory=list,
                               description="item ids, repeated or comma-separated")
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    recent_items: list[str] = Field(default_factory=list,
                                    description="items of this session, most recent last")
    segment: str | None = Field(None, max_length=128, description="a stranger's segment")
    region: str | None = Field(None, max_length=128, description="a stranger's region")

    @model_validator(mode="after")
    def _price_range(self) -> RecommendParams:
        if (self.min_price is not None and self.max_price is not None
                and self.min_price > self.max_price):
            raise ValueError("min_price is above max_price")
        return self


LIST_PARAMS = frozenset({"exclude", "recent_items"})


def parse_query(model: type[BaseModel], params: QueryParams) -> Any:
    """Validate a query against a model, answering errors as FastAPI does (422).

    The hot route reads its query this way rather than as ten declared parameters:
    FastAPI's per-parameter machinery costs more than the whole cache hit."""
    data: dict[str, Any] = {}
    for key in params:
        data[key] = params.getlist(key) if key in LIST_PARAMS else params[key]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameters for a query model, so /docs shows them as usual."""
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": False,
             "description": prop.pop("description", ""), "schema": prop}
            for name, prop in schema["properties"].items()]


class Reason(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str = Field(examples=["because_you_bought"])


class Item(BaseModel):
    item_id: str
    score: float
    reasons: list[Reason]


class RecommendResponse(BaseModel):
    user_id: str | None
    model_version: str
    variant: str
    recommendation_id: str
    items: list[Item]


class SimilarResponse(BaseModel):
    item_id: str
    model_version: str
    items: list[Item]


class PopularResponse(BaseModel):
    model_version: str
    popular: list[Item]
    trending: list[Item]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    event_type: str = Field(min_length=1, max_length=64, examples=["purchase"])
    timestamp: datetime | float | None = Field(None, description="default: now")
    value: float | None = Field(None, description="a rating, or a quantity")
    channel: str | None = Field(None, max_length=64)
    recommendation_id: str | None = Field(None, max_length=64)


class ItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    in_stock: bool | None = None
    delisted: bool | None = None
    price: float | None = Field(None, ge=0)


# -- dependencies ---------------------------------------------------------------------

async def get_state(request: Request) -> ServiceState:
    # async: a sync dependency would cost every request a hop to the thread pool
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


async def require_api_key(
    state: StateDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    expected = state.settings.api_key
    if not expected:
        raise HTTPException(401, "admin endpoints are disabled: set RECSVC_API_KEY")
    given = x_api_key
    if given is None and authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:]
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong API key (X-API-Key header)")


AdminDep = Depends(require_api_key)


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeated parameters, or one comma-separated value."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(out)


# -- the application ------------------------------------------------------------------

def create_app(settings: Settings | None = None, state: ServiceState | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One BLAS thread: requests already run side by side (threads, workers), and
        # BLAS's idle threads spin on the cores that answer HTTP (measured on the
        # compute path: p99 22.4 -> 18.1 ms).
        blas = threadpool_limits(limits=1, user_api="blas")
        service = state or ServiceState(settings)
        app.state.service = service
        if not service.has_engine:
            await service.try_load()
        watcher = asyncio.create_task(service.watch())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await service.close()
            blas.restore_original_limits()

    app = FastAPI(title="recsvc", version=__version__, lifespan=lifespan,
                  description="Personalized product recommendations for online shops.")
    app.add_middleware(PlainRecommendFastPath)
    app.add_middleware(telemetry.TelemetryMiddleware, max_body_bytes=settings.max_body_bytes)

    @app.exception_handler(NoModel)
    async def _no_model(request: Request, exc: NoModel) -> Response:
        return json_response({"detail": f"no model loaded: {exc}"}, 503)

    @app.exception_handler(QueryError)
    async def _bad_query(request: Request, exc: QueryError) -> Response:
        return json_response({"detail": str(exc)}, 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return json_response({"detail": "internal error"}, 500)

    @app.get("/recommend", response_model=RecommendResponse, tags=["storefront"],
             openapi_extra={"parameters": query_parameters(RecommendParams)})
    async def recommend_route(request: Request, state: StateDep) -> Response:
        """Top-n items for a shopper, each with reason codes. Without `user_id`, for an
        anonymous session (give `recent_items`) or a stranger (`segment`, `region`)."""
        p = parse_query(RecommendParams, request.query_params)
        attributes = {k: v for k, v in (("segment", p.segment), ("region", p.region)) if v}
        query = RecommendQuery(
            user_id=p.user_id or "", n=p.n, exclude_seen=p.exclude_seen,
            category=p.category, exclude=_split(p.exclude), min_price=p.min_price,
            max_price=p.max_price, recent_items=_split(p.recent_items),
            attributes=attributes)
        return Response(await recommend_body(state, query), media_type="application/json")

    @app.get("/similar/{item_id}", response_model=SimilarResponse, tags=["storefront"])
    async def similar_route(
        state: StateDep,
        item_id: Annotated[str, Path(min_length=1, max_length=256)],
        n: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> Response:
        """Related items for a product page."""
        engine = state.engine
        item = int(engine.model.item_index([item_id])[0])
        if item < 0:
            raise HTTPException(404, f"unknown item {item_id!r}")
        live, _ = _live(state)
        entries = await run_in_threadpool(similar_entries, engine, item, n,
                                          live & engine.rules.allowed, live)
        return json_response({"item_id": item_id, "model_version": engine.version,
                              "items": items_payload(entries)})

    @app.get("/popular", response_model=PopularResponse, tags=["storefront"])
    async def popular_route(
        state: StateDep,
        n: Annotated[int, Query(ge=1, le=100)] = 10,
        category: Annotated[str | None, Query(max_length=512)] = None,
        segment: Annotated[str | None, Query(max_length=128)] = None,
        region: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        """Popular (overall, or in a segment/region) and trending items."""
        engine = state.engine
        live, price = _live(state)
        allowed = live & engine.rules.allowed
        mask = query_mask(engine, price, category)
        if mask is not None:
            allowed = allowed & mask
        attributes = {k: v for k, v in (("segment", segment), ("region", region)) if v}
        popular = popular_entries(engine, "popular", n, allowed, attributes)
        trending = popular_entries(engine, "trending", n, allowed, attributes)
        return json_response({"model_version": engine.version,
                              "popular": items_payload(popular),
                              "trending": items_payload(trending)})

    @app.post("/events", tags=["storefront"])
    async def events_route(
        state: StateDep,
        events: Annotated[EventIn | list[EventIn], Body()],
    ) -> Response:
        """Record one event or a batch. Appended durably to the events log (the next
        training learns from it); the shopper's next list reflects it at once."""
        batch = events if isinstance(events, list) else [events]
        if not batch:
            raise HTTPException(422, "no events")
        if len(batch) > state.settings.max_events_per_request:
            raise HTTPException(413, f"at most {state.settings.max_events_per_request} "
                                     "events per request")
        accepted = await record_events(state, batch)
        return json_response({"accepted": accepted})

    @app.put("/items/{item_id}", tags=["operators"], dependencies=[AdminDep])
    async def put_item(state: StateDep, item_id: Annotated[str, Path(max_length=256)],
                       update: ItemUpdate) -> Response:
        """Replace an item's live catalog state (stock, delisting, price)."""
        return json_response(await update_item(state, item_id, update, replace=True))

    @app.patch("/items/{item_id}", tags=["operators"], dependencies=[AdminDep])
    async def patch_item(state: StateDep, item_id: Annotated[str, Path(max_length=256)],
                         update: ItemUpdate) -> Response:
        """Change some of an item's live catalog state."""
        return json_response(await update_item(state, item_id, update, replace=False))

    @app.get("/model", tags=["operations"])
    async def model_route(state: StateDep) -> Response:
        m = state.engine.model.manifest
        return json_response({
            "version": state.engine.version, "trained_at": m.get("created_at"),
            "metrics": m.get("metrics", {}), "counts": m.get("counts", {}),
            "blend": m.get("blend", {}), "algorithms": sorted(m.get("components", {})),
            "variants": [v.name for _, v in state.engine.rules.variants] or ["default"]})

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        return json_response({"status": "alive"})

    @app.get("/readyz", tags=["operations"])
    async def readyz(state: StateDep) -> Response:
        cache = state.cache.status()
        telemetry.REDIS_UP.set(0 if cache == "degraded" else 1)
        if not state.has_engine:
            return json_response({"status": "no model", "detail": state.load_error,
                                  "cache": cache}, 503)
        status = "degraded" if cache == "degraded" else "ready"
        return json_response({"status": status, "model_version": state.engine.version,
                              "cache": cache})

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        body, content_type = telemetry.render()
        return Response(body, media_type=content_type)

    @app.post("/admin/reload", tags=["operations"], dependencies=[AdminDep])
    async def reload_route(state: StateDep) -> Response:
        try:
            version = await state.load()
        except ModelError as exc:
            raise HTTPException(409, f"reload failed, still serving the previous model: "
                                     f"{exc}") from None
        return json_response({"model_version": version})

    @app.post("/admin/rollback", tags=["operations"], dependencies=[AdminDep])
    async def rollback_route(
        state: StateDep, version: Annotated[str | None, Query(max_length=128)] = None
    ) -> Response:
        try:
            served = await state.rollback(version)
        except ModelError as exc:
            raise HTTPException(404, str(exc)) from None
        return json_response({"model_version": served})

    return app


# -- the work behind the routes -------------------------------------------------------

def _live(state: ServiceState) -> tuple[np.ndarray, np.ndarray]:
    state.overrides.refresh()
    return state.overrides.masks(state.engine.model)


async def recommend_body(state: ServiceState, query: RecommendQuery) -> bytes:
    """The response to `GET /recommend`, as bytes: from the cache when the shopper's
    list is there and enough of it is still allowed, else computed (and cached)."""
    engine = state.engine
    settings = state.settings
    rules = engine.rules
    variant = rules.variant_for(query.user_id)
    live, price = _live(state)
    allowed = allowed_items(engine, query, live, price)
    key = (list_key(settings.cache_namespace, engine.version, variant.name, query.user_id)
           if query.cacheable and query.user_id else None)
    packed, positions = None, None
    if key is not None:
        raw = await state.cache.get(key)
        packed = unpack(raw) if raw is not None else None
        if packed is not None:
            positions = select(packed, query.n, allowed, engine.model.item_category,
                               rules.max_per_category)
            if len(positions) < min(query.n, len(packed)):
                positions = None  # too many went out of stock since: compute afresh
        (telemetry.CACHE_HIT if positions is not None else telemetry.CACHE_MISS).inc()
    else:
        telemetry.CACHE_SKIP.inc()
    if positions is None:
        fresh = []
        if query.user_id:
            raw_fresh = await state.cache.fresh(fresh_key(settings.cache_namespace,
                                                          query.user_id))
            fresh = [(item, w) for item, w, ts in decode_fresh(raw_fresh)
                     if ts > engine.reference_time]
        value, fallback = await run_in_threadpool(
            compute_entries, engine, query, variant, fresh, live, allowed,
            max(settings.cache_list_size, query.n), time.time(), settings.new_arrival_days)
        if fallback:
            telemetry.FALLBACKS.labels(kind=fallback).inc()
        if key is not None:
            await state.cache.set(key, value, settings.cache_ttl_s)
        packed = unpack(value)
        assert packed is not None
        positions = select(packed, query.n, allowed, engine.model.item_category,
                           rules.max_per_category)
    telemetry.count_recommendation(variant.name)
    head = orjson.dumps({"user_id": query.user_id or None, "model_version": engine.version,
                         "variant": variant.name, "recommendation_id": os.urandom(16).hex()})
    return head[:-1] + b',"items":' + engine.renderer.items_json(packed, positions) + b"}"


def _epoch(value: datetime | float | None, now: float) -> float:
    if value is None:
        return now
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


async def record_events(state: ServiceState, batch: list[EventIn]) -> int:
    engine = state.engine
    now = time.time()
    records, fresh_by_user = [], {}
    for i, event in enumerate(batch):
        event_type = engine.events.canonical(event.event_type)
        if event_type is None:
            raise HTTPException(422, f"event {i}: unknown event_type {event.event_type!r} "
                                     f"(known: {', '.join(sorted(engine.events.weights))})")
        ts = _epoch(event.timestamp, now)
        record = {"user_id": event.user_id, "item_id": event.item_id,
                  "event_type": event_type, "timestamp": round(ts, 3)}
        for name in ("value", "channel", "recommendation_id"):
            if getattr(event, name) is not None:
                record[name] = getattr(event, name)
        records.append(record)
        weight = engine.events.weight(event_type, event.value)
        if weight != 0 and not engine.model.is_opted_out(event.user_id):
            fresh_by_user.setdefault(event.user_id, []).append(
                encode_fresh(event.item_id, weight, max(ts, engine.reference_time + 1e-3)))
    await run_in_threadpool(state.events.append, records)
    settings = state.settings
    variants = [v.name for _, v in engine.rules.variants] or ["default"]
    for user_id, fresh in fresh_by_user.items():
        await state.cache.add_fresh(fresh_key(settings.cache_namespace, user_id), fresh,
                                    settings.fresh_events_per_user,
                                    settings.fresh_events_ttl_s)
        await state.cache.delete(list_key(settings.cache_namespace, engine.version, v, user_id)
                                 for v in variants)
    for record in records:
        telemetry.EVENTS.labels(event_type=record["event_type"]).inc()
    return len(records)


async def update_item(state: ServiceState, item_id: str, update: ItemUpdate,
                      replace: bool) -> dict[str, Any]:
    engine = state.engine
    if engine.model.item_index([item_id])[0] < 0:
        raise HTTPException(404, f"unknown item {item_id!r}: it joins at the next training")
    changes = update.model_dump(exclude_none=True)
    if not changes and not replace:
        raise HTTPException(422, "nothing to change (in_stock, delisted, price)")
    entry = await run_in_threadpool(state.overrides.update, item_id, changes, replace)
    return {"item_id": item_id, **entry}
