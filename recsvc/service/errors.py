"""Every error the service answers, in one body shape: `{"detail": ...}`, a message,
except for 422 (an invalid request), where it is always the list of problems, each
naming where it is (`loc`, as FastAPI's own validation errors do), what is wrong (`msg`)
and its kind (`type`).

Use cases raise the exceptions here (or the core's `QueryError`); the handlers that
`install` adds turn them into responses, so no route formats an error itself."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from recsvc.core.policy.filters import QueryError

log = logging.getLogger("recsvc.api")


def error_body(detail: Any) -> bytes:
    return orjson.dumps({"detail": detail})


def error_response(status: int, detail: Any, headers: dict[str, str] | None = None
                   ) -> Response:
    return Response(error_body(detail), status_code=status, media_type="application/json",
                    headers=headers)


class ServiceError(Exception):
    """An error a request caused, answered with `status` and this message."""

    status = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Invalid(ServiceError):
    """A request the API's schema admits but the service cannot take: 422, naming
    where (`loc`: "body" or "query", then the field's path)."""

    status = 422

    def __init__(self, detail: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(detail)
        self.loc = loc


class NotFound(ServiceError):
    status = 404


class TooLarge(ServiceError):
    status = 413


class Conflict(ServiceError):
    status = 409


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class TooManyRequests(ServiceError):
    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class Unavailable(ServiceError):
    """Could not be done now (the events volume is full, say): retry later."""

    status = 503


class NoModel(ServiceError):
    """No model is loaded yet (none trained, or the current one is unusable)."""

    status = 503

    def __init__(self, detail: str) -> None:
        super().__init__(f"no model loaded: {detail}")


EXPECTED = (ServiceError, QueryError)  # what a request may cause: answered, not logged


def problems(loc: tuple[str | int, ...], message: str, kind: str) -> list[dict[str, Any]]:
    return [{"loc": list(loc), "msg": message, "type": kind}]


def response_for(exc: ServiceError | QueryError) -> Response:
    if isinstance(exc, Invalid):
        return error_response(422, problems(exc.loc, exc.detail, "invalid"))
    if isinstance(exc, ServiceError):
        return error_response(exc.status, exc.detail, exc.headers)
    return error_response(404, str(exc))  # a well-formed query for what is not there


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        return response_for(exc)

    @app.exception_handler(QueryError)
    async def _bad_query(request: Request, exc: QueryError) -> Response:
        return response_for(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal error")
