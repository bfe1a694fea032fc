"""Merchandisers' rules: read and replace them (with the operator key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from recsvc.service.deps import AdminDep, StateDep
from recsvc.service.errors import Invalid, TooLarge
from recsvc.service.routes import answers, json_response
from recsvc.service.schemas import RulesApplied
from recsvc.service.usecases import merchandising

router = APIRouter(tags=["merchandising"])
TOML = "application/toml"
MAX_RULES_BYTES = 1024 * 1024


@router.get("/admin/rules", dependencies=[AdminDep], response_class=Response,
            responses={200: {"content": {TOML: {"schema": {"type": "string"}}},
                             "description": "the rules file (TOML)"}, **answers(401, 409)})
async def get_rules(state: StateDep) -> Response:
    return Response(merchandising.rules_text(state), media_type=TOML)


@router.put("/admin/rules", dependencies=[AdminDep], response_model=RulesApplied,
            responses=answers(401, 409, 413, 422, 429),
            openapi_extra={"requestBody": {"required": True, "content": {
                TOML: {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}}}}})
async def put_rules(request: Request, state: StateDep) -> Response:
    """Replace the rules (TOML, as `docs/rules.md` describes): checked against the model
    served, then applied by every worker from its next request (within
    `RECSVC_RULES_RELOAD_S`)."""
    body = await request.body()
    if len(body) > MAX_RULES_BYTES:
        raise TooLarge(f"rules larger than {MAX_RULES_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("rules: not UTF-8 text", ("body",)) from None
    return json_response(await merchandising.replace_rules(state, text))
