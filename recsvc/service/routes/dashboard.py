"""The dashboard for the shop's merchandisers and analysts (`/dashboard`): the KPIs and A/B
tests of the latest report, a shopper lookup, a product lookup, the models and the
nightly job. Signed in with the operator key (a form, then a signed cookie that lasts
`SESSION_S`), or the `X-API-Key` header. Pages, not API: left out of /openapi.json."""

from __future__ import annotations

import hashlib
import hmac
import time
from importlib.resources import files
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from recsvc.service import pages
from recsvc.service.deps import StateDep
from recsvc.service.errors import ServiceError, Unauthorized
from recsvc.service.usecases import dashboard

COOKIE = "recsvc_dashboard"
SESSION_S = 12 * 3600
router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _signature(key: str, expires: int) -> str:
    return hmac.new(key.encode(), f"dashboard\n{expires}".encode(), hashlib.sha256).hexdigest()


def _session_ok(key: str, cookie: str | None) -> bool:
    expires, _, signature = (cookie or "").partition(".")
    return (expires.isdigit() and int(expires) > time.time()
            and hmac.compare_digest(signature, _signature(key, int(expires))))


class SignIn(ServiceError):
    """Not signed in: a browser is sent to the form."""

    status = 303


async def signed_in(request: Request, state: StateDep) -> None:
    key = state.settings.api_key
    if not key:
        raise Unauthorized("the dashboard is disabled: set RECSVC_API_KEY")
    if _session_ok(key, request.cookies.get(COOKIE)):
        return
    if request.headers.get("x-api-key") is not None:
        state.gate.operator(request.headers.get, request.client.host if request.client
                            else "unknown")
        return
    raise SignIn("sign in at /dashboard/login")


Page = Depends(signed_in)


def install(app: object) -> None:
    """The router, its sign-in redirect, and the vendored chart library's files."""
    app.mount(pages.STATIC, StaticFiles(directory=str(files("recsvc.service") / "static")),  # type: ignore[attr-defined]
              name="dashboard-static")

    @app.exception_handler(SignIn)  # type: ignore[attr-defined]
    async def _to_login(request: Request, exc: SignIn) -> Response:
        return RedirectResponse("/dashboard/login", status_code=303)

    app.include_router(router)  # type: ignore[attr-defined]


@router.get("/login")
async def login_form() -> HTMLResponse:
    return HTMLResponse(pages.login())


@router.post("/login")
async def login(request: Request, state: StateDep) -> Response:
    fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    address = request.client.host if request.client else "unknown"
    key = state.settings.api_key
    state.gate.throttle.check(address)
    if not key or not hmac.compare_digest(fields.get("key", "").encode(), key.encode()):
        state.gate.throttle.failed(address)
        return HTMLResponse(pages.login("wrong key"), status_code=401)
    expires = int(time.time()) + SESSION_S
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(COOKIE, f"{expires}.{_signature(key, expires)}", max_age=SESSION_S,
                        httponly=True, samesite="strict", path="/dashboard",
                        secure=request.url.scheme == "https")
    return response


@router.get("", dependencies=[Page])
async def overview(state: StateDep) -> HTMLResponse:
    found = dashboard.latest_report(state)
    return HTMLResponse(pages.overview(found[1] if found else None,
                                       str(found[0]) if found else None,
                                       state.engine.version if state.has_engine else None))


@router.get("/shopper", dependencies=[Page])
async def shopper(state: StateDep,
                  user_id: Annotated[str | None, Query(max_length=256)] = None) -> HTMLResponse:
    view = await dashboard.shopper(state, user_id) if user_id else None
    return HTMLResponse(pages.shopper(view, user_id or ""))


@router.get("/product", dependencies=[Page])
async def product(state: StateDep,
                  item_id: Annotated[str | None, Query(max_length=256)] = None) -> HTMLResponse:
    view = await dashboard.product(state, item_id) if item_id else None
    return HTMLResponse(pages.product(view, item_id or ""))


@router.get("/models", dependencies=[Page])
async def models(state: StateDep) -> HTMLResponse:
    return HTMLResponse(pages.models(dashboard.models(state)))
