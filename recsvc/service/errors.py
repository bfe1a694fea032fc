"""Every error the service answers, in one body shape: `{"detail": ...}` (a message, or
for an invalid request the list of problems, each naming its field), with its status.

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
    status = 422


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


def response_for(exc: ServiceError | QueryError) -> Response:
    if isinstance(exc, ServiceError):
        return error_response(exc.status, exc.detail, exc.headers)
    return error_response(422, str(exc))


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
