"""The storefront's most frequent request, `GET /recommend`, answered below the
framework.

A cache hit is a few microseconds of work; FastAPI's routing and dependency solving
cost several times that. So this ASGI middleware reads the query with the route's own
parser (`query.parse_recommend`) and answers with the route's own use case
(`usecases.recommend.recommend_body`). A query that is not valid, or a service without
a model yet, goes on to the route, which answers the error as usual: the answers are the
same either way, only the path through the framework differs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.exceptions import RequestValidationError

from recsvc.service.auth import OPEN
from recsvc.service.errors import EXPECTED, response_for
from recsvc.service.query import parse_recommend
from recsvc.service.usecases.recommend import recommend_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HEADERS = [(b"content-type", b"application/json")]


def _headers(scope: Scope) -> Callable[[str], str | None]:
    """A reader of the request's headers by lower-case name (ASGI gives them so)."""
    headers = scope.get("headers", ())

    def header(name: str) -> str | None:
        wanted = name.encode()
        for key, value in headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    return header


class RecommendFastPath:
    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != "/recommend"
                or scope["method"] != "GET"):
            await self.app(scope, receive, send)
            return
        service = getattr(scope["app"].state, "service", None) if "app" in scope else None
        if service is None or not service.has_engine:
            await self.app(scope, receive, send)  # the route explains (503)
            return
        try:
            query = parse_recommend(scope["query_string"])
        except RequestValidationError:
            await self.app(scope, receive, send)  # the route explains (422)
            return
        try:
            gate = service.gate
            caller = OPEN if gate.wide_open else gate.storefront(
                _headers(scope), (scope.get("client") or ("unknown",))[0])
            body = await recommend_body(service, query, caller)
        except EXPECTED as exc:  # outside the framework's handlers: answered the same way
            await response_for(exc)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
