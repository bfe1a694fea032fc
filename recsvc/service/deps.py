"""Dependencies the routes declare: the running service's state, and who is calling
(`service.auth`): the operator, or whoever may call the storefront's endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from recsvc.service.auth import Caller
from recsvc.service.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    # async: a sync dependency would cost every request a hop to the thread pool
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


# Declared for the OpenAPI description (its security schemes); `auth.Gatekeeper` reads them.
OPERATOR_KEY = APIKeyHeader(name="X-API-Key", scheme_name="operatorKey", auto_error=False,
                            description="RECSVC_API_KEY (or Authorization: Bearer)")
CLIENT_KEY = APIKeyHeader(name="X-Client-Key", scheme_name="clientKey", auto_error=False,
                          description="RECSVC_CLIENT_KEY: the storefront's backend")
SHOPPER_TOKEN = APIKeyHeader(name="X-Shopper-Token", scheme_name="shopperToken",
                             auto_error=False,
                             description="a signed shopper token: a browser, for its shopper")
Declared = Annotated[str | None, Security(OPERATOR_KEY)]


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def require_api_key(request: Request, state: StateDep, _key: Declared) -> None:
    state.gate.operator(request.headers.get, _address(request))


async def storefront_caller(
    request: Request, state: StateDep,
    _client: Annotated[str | None, Security(CLIENT_KEY)],
    _token: Annotated[str | None, Security(SHOPPER_TOKEN)],
    _operator: Declared,
) -> Caller:
    return state.gate.storefront(request.headers.get, _address(request))


AdminDep = Depends(require_api_key)
CallerDep = Annotated[Caller, Depends(storefront_caller)]
