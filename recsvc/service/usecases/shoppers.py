"""What the shop asks about one shopper's data: forget them, and read or change what
they consent to. Forgetting is `stores.forget`'s use case; this module feeds it the
running service's cache, ledger and model root."""

from __future__ import annotations

import time
from typing import Any

from recsvc.core.policy.privacy import PURPOSES
from recsvc.service.errors import Conflict, Unavailable
from recsvc.service.schemas import ConsentIn
from recsvc.service.state import ServiceState
from recsvc.stores.cache import fresh_key, list_key, shown_key
from recsvc.stores.forget import forget_users


def _variants(state: ServiceState) -> list[str]:
    """Every variant a list may be cached under."""
    return sorted({"default", *state.rules_file.variants})


async def forget(state: ServiceState, user_id: str) -> dict[str, Any]:
    """Forget the shopper (`stores.forget.forget_users`); the receipt. This worker drops
    what it holds at once, the others within their reload interval."""
    settings = state.settings
    try:
        receipt = await forget_users(
            [user_id], ledger=state.privacy, cache=state.cache,
            cache_backend=state.cache.status(), namespace=settings.cache_namespace,
            subject=state.subject, model_root=settings.model_root,
            variants=_variants(state), grace_days=settings.forget_grace_days,
            now=time.time())
    except OSError as exc:
        raise Unavailable(f"the forget was not recorded ({exc.strerror or exc}); "
                          "nothing changed: retry") from None
    await state.follow_privacy()
    return receipt


def consent_of(state: ServiceState, user_id: str) -> dict[str, Any]:
    """The shopper's consent per purpose, and where it comes from. A refusal in the
    users file the model was trained on holds for personalization until that file
    changes (the shop's system of record), whatever the API was told since."""
    given = state.privacy.consent_of(user_id)
    refused = state.has_engine and state.engine.model.is_opted_out(user_id)
    # Personalization is assumed without a statement (as in training); a campaign
    # purpose is only what the shopper said here, else the shop's CRM knows (null).
    consent: dict[str, bool | None] = {**dict.fromkeys(PURPOSES), "personalization": True,
                                       **(given or {})}
    source = "api" if given is not None else "users_file" if refused else "default"
    if refused:
        consent["personalization"] = False
    return {"user_id": user_id, "consent": consent, "source": source,
            "forgotten": state.privacy.is_forgotten(user_id)}


async def set_consent(state: ServiceState, user_id: str, change: ConsentIn) -> dict[str, Any]:
    """Change what the shopper consents to (purposes left out keep their value). Without
    consent to personalization, their cached lists and fresh events go at once and
    nothing more of theirs is recorded; given again, the next training may use what
    they do from now on."""
    if state.privacy.is_forgotten(user_id):
        raise Conflict(f"user {user_id!r} was forgotten: nothing of theirs is kept")
    # What they said before, with what they say now: a purpose never stated stays so.
    consent = {**(state.privacy.consent_of(user_id) or {}),
               **change.model_dump(exclude_none=True)}
    try:
        state.privacy.set_consent(user_id, consent, time.time())
    except OSError as exc:
        raise Unavailable(f"consent not recorded ({exc.strerror or exc}); retry") from None
    if not consent.get("personalization", True):
        settings = state.settings
        who = state.subject(user_id)
        keys = [fresh_key(settings.cache_namespace, who), shown_key(settings.cache_namespace, who)]
        if state.has_engine:
            keys += [list_key(settings.cache_namespace, state.engine.version, v, who)
                     for v in _variants(state)]
        await state.cache.delete(keys)
    return consent_of(state, user_id)
