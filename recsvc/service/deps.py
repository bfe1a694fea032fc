"""Dependencies the routes declare: the running service's state, and the operator key."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from recsvc.service.errors import Unauthorized
from recsvc.service.state import ServiceState


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
        raise Unauthorized("admin endpoints are disabled: set RECSVC_API_KEY")
    given = x_api_key
    if given is None and authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:]
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("missing or wrong API key (X-API-Key header)")


AdminDep = Depends(require_api_key)
