"""The storefront's most frequent request, `GET /recommend?user_id=U[&n=N]`, answered
below the framework.

A cache hit is a few microseconds of work; FastAPI's routing, dependency solving and
parameter validation cost several times that. So this ASGI middleware recognizes the
plain request (only `user_id` and `n`, both valid) and answers it with the very function
the `/recommend` route uses (`api.recommend_body`). Anything else, an invalid value
included, goes on to the route, which validates and documents every parameter as usual:
the answers are the same either way, only the path through the framework differs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HEADERS = [(b"content-type", b"application/json")]


def plain_query(query_string: bytes) -> tuple[str, int] | None:
    """(user_id, n) when the query is exactly that and valid; else None."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True,
                          strict_parsing=True, encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    user_id, n = None, 10
    for key, value in pairs:
        if key == "user_id" and user_id is None:
            user_id = value
        elif key == "n" and value.isdigit() and len(value) <= 3:
            n = int(value)
        else:
            return None
    if user_id is None or not 1 <= len(user_id) <= 256 or not 1 <= n <= 100:
        return None
    return user_id, n


class PlainRecommendFastPath:
    def __init__(self, app: Callable) -> None:
        # Resolved once here (the API module imports this one), not on every request.
        from recsvc.api import recommend_body
        from recsvc.recommend import RecommendQuery

        self.app = app
        self.recommend_body = recommend_body
        self.query = RecommendQuery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != "/recommend"
                or scope["method"] != "GET"):
            await self.app(scope, receive, send)
            return
        plain = plain_query(scope["query_string"])
        service = getattr(scope["app"].state, "service", None) if "app" in scope else None
        if plain is None or service is None or not service.has_engine:
            await self.app(scope, receive, send)  # the route validates and explains
            return
        body = await self.recommend_body(service, self.query(user_id=plain[0], n=plain[1]))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
