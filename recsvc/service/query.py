"""`GET /recommend`'s query: read and validated in one place, for the route and for the
fast path alike.

The query is validated against `RecommendParams` from the raw query string rather than
as ten declared FastAPI parameters: FastAPI's per-parameter machinery costs more than a
whole cache hit."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from recsvc.core.lists import RecommendQuery
from recsvc.service.schemas import RecommendParams

LIST_PARAMS = frozenset({"exclude", "recent_items"})


def parse_recommend(query_string: bytes) -> RecommendQuery:
    """The query, or a RequestValidationError answered as FastAPI answers one (422)."""
    # Read as Starlette reads a query string: lenient, bad UTF-8 replaced, the last of
    # repeated single values.
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in LIST_PARAMS:
            data.setdefault(key, []).append(value)
        else:
            data[key] = value
    try:
        p = RecommendParams.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    attributes = {k: v for k, v in (("segment", p.segment), ("region", p.region)) if v}
    return RecommendQuery(
        user_id=p.user_id or "", n=p.n, page=p.page, exclude_seen=p.exclude_seen,
        category=p.category,
        exclude=tuple(p.exclude), min_price=p.min_price, max_price=p.max_price,
        recent_items=tuple(p.recent_items), attributes=attributes, placement=p.placement)


def openapi_parameters() -> list[dict[str, Any]]:
    """The query's parameters for the OpenAPI page, so /docs shows them as usual."""
    schema = RecommendParams.model_json_schema()
    return [{"name": name, "in": "query", "required": False,
             "description": prop.pop("description", ""), "schema": prop}
            for name, prop in schema["properties"].items()]
