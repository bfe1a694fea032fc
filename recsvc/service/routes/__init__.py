"""One router per area: the storefront's, the catalog's (operators), shoppers' data
(operators) and operations."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from recsvc.service.schemas import ErrorMessage, ValidationProblems

WHY = {
    401: "missing or wrong credentials",
    403: "the shopper token is for another shopper",
    404: "not found: an unknown item, category or version",
    409: "conflicts with the current state",
    413: "the request is too large",
    422: "invalid request: every problem, each naming its field",
    429: "too many requests: retry after `Retry-After` seconds",
    503: "no model loaded yet, or the events log cannot be written: retry",
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route may give, for its OpenAPI description."""
    out: dict[int | str, dict[str, Any]] = {
        code: {"model": ValidationProblems if code == 422 else ErrorMessage,
               "description": WHY[code]} for code in codes}
    if 429 in out:
        out[429]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "seconds"}}
    return out


def json_response(payload: Any, status_code: int = 200) -> Response:
    """A JSON answer serialized by orjson (FastAPI's own encoder costs several times as
    much on a list of items)."""
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json")
