"""What we may do with a shopper's data: the purposes a shopper consents to, and the
keyed hash that stands for their id wherever we record it without needing the id itself
(the suppression list of forgotten shoppers, opt-outs saved in a model, cache keys and
logs when `RECSVC_ID_HASH_KEY` is set).

A keyed hash (HMAC-SHA256), not a plain one: shop user ids are often sequential, so a
plain hash is undone by hashing every id in order. Without the key, a list of hashes
says nothing about who is on it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import numpy as np

# What a shopper may consent to, separately: lists on the site personalized from their
# behaviour, and their use in email or SMS campaigns.
PURPOSES = ("personalization", "email", "sms")
DIGEST_CHARS = 32  # 128 bits: no collisions among any shop's shoppers


class IdHasher:
    """The keyed hash of shopper ids."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("an id hash key needs at least 16 bytes")
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied: keyed once

    def digest(self, user_id: str) -> str:
        h = self._keyed.copy()
        h.update(user_id.encode())
        return h.hexdigest()[:DIGEST_CHARS]

    def digests(self, user_ids: Iterable[str]) -> np.ndarray:
        """Digests of many ids (a sorted-lookup-friendly fixed-width string array)."""
        return np.array([self.digest(str(u)) for u in user_ids], dtype=f"<U{DIGEST_CHARS}")


def parse_purposes(value: object) -> dict[str, bool] | None:
    """A users file's `consent` value as consent per purpose: yes/no for all of them, or
    the purposes consented to, separated by `;`, `,` or `|` ("personalization;email").
    None for an empty value (no statement: consent is assumed, as before purposes)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return dict.fromkeys(PURPOSES, bool(value))
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in ("1", "true", "yes", "y", "t", "all"):
        return dict.fromkeys(PURPOSES, True)
    if text in ("0", "false", "no", "n", "f", "none"):
        return dict.fromkeys(PURPOSES, False)
    given = {p.strip() for p in text.replace("|", ",").replace(";", ",").split(",")}
    unknown = given - set(PURPOSES) - {""}
    if unknown:
        raise ValueError(f"unknown consent purpose {sorted(unknown)[0]!r} "
                         f"(known: {', '.join(PURPOSES)})")
    return {p: p in given for p in PURPOSES}
