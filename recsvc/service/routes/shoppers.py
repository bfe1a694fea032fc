"""A shopper's data, for the shop's own systems (operator key): forget them, and read or
change what they consent to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path
from fastapi.responses import Response

from recsvc.service.deps import AdminDep, StateDep
from recsvc.service.routes import answers, json_response
from recsvc.service.schemas import ConsentIn, ConsentOut, ForgetReceipt
from recsvc.service.usecases import shoppers

router = APIRouter(tags=["shoppers"], dependencies=[AdminDep])
UserId = Annotated[str, Path(min_length=1, max_length=256)]


@router.delete("/users/{user_id}", response_model=ForgetReceipt,
               responses=answers(401, 422, 429, 503))
async def forget(state: StateDep, user_id: UserId) -> Response:
    """Forget the shopper: their cached lists and fresh events are deleted now, they are
    served only non-personal lists and nothing more of theirs is recorded; the next
    nightly job removes their rows from the events files and retires old versions
    holding them. Answers with a receipt of what was removed where."""
    return json_response(await shoppers.forget(state, user_id))


@router.get("/users/{user_id}/consent", response_model=ConsentOut,
            responses=answers(401, 422, 429))
async def get_consent(state: StateDep, user_id: UserId) -> Response:
    return json_response(shoppers.consent_of(state, user_id))


@router.put("/users/{user_id}/consent", response_model=ConsentOut,
            responses=answers(401, 409, 413, 422, 429, 503))
async def put_consent(state: StateDep, user_id: UserId,
                      change: Annotated[ConsentIn, Body()]) -> Response:
    """Change what the shopper consents to, per purpose (those left out keep their
    value). Without consent to personalization nothing of theirs is recorded or cached,
    and they get non-personal lists."""
    return json_response(await shoppers.set_consent(state, user_id, change))
