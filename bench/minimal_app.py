"""The reference for the cache-hit benchmark: the least a FastAPI service can do for a
cached list — one Redis GET, the stored bytes returned as they are.

    REDIS_URL=redis://127.0.0.1:6379/0 KEY_PREFIX=recsvc:list:V:default: \\
        uvicorn --factory bench.minimal_app:create_app
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from fastapi import FastAPI, Response


def create_app() -> FastAPI:
    app = FastAPI()
    client = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = os.environ["KEY_PREFIX"]

    @app.get("/recommend")
    async def recommend(user_id: str) -> Response:
        value = await client.get(prefix + "{" + user_id + "}")  # keys' hash-tag layout
        return Response(value or b"{}", media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"alive"}', media_type="application/json")

    return app
