"""Shopper tokens: what lets a browser call the service for its own shopper only.

The shop's backend, which knows who is logged in, makes a token with the secret it
shares with the service (`RECSVC_SHOPPER_TOKEN_SECRET`) and hands it to the page; the
page sends it as `X-Shopper-Token`. The service accepts it for that shopper until it
expires, and for no one else.

    token     = base64url(user_id) "." expires "." base64url(signature)
    signature = HMAC-SHA256(secret, "recsvc-shopper-v1\\n" + user_id + "\\n" + expires)

with `expires` in epoch seconds (an integer) and base64url without padding: a few lines
in any language (docs/security.md)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

MAX_TOKEN_CHARS = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, user_id: str, expires: int) -> bytes:
    message = f"recsvc-shopper-v1\n{user_id}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


def make_shopper_token(secret: bytes, user_id: str, expires: int) -> str:
    """A token for `user_id`, valid until `expires` (epoch seconds)."""
    return f"{_b64(user_id.encode())}.{int(expires)}.{_b64(_signature(secret, user_id, expires))}"


def verify_shopper_token(secret: bytes, token: str, now: float) -> tuple[str | None, str]:
    """(the shopper it speaks for, "") or (None, why it is refused)."""
    if len(token) > MAX_TOKEN_CHARS:
        return None, "shopper token too long"
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None, "malformed shopper token"
    try:
        user_id = _unb64(parts[0]).decode()
        given = _unb64(parts[2])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None, "malformed shopper token"
    expires = int(parts[1])
    if not hmac.compare_digest(given, _signature(secret, user_id, expires)):
        return None, "shopper token signature does not match"
    if expires <= now:
        return None, "shopper token expired"
    return user_id, ""
