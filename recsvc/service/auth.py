"""Who is calling: the operator (`RECSVC_API_KEY`), the storefront's backend
(`RECSVC_CLIENT_KEY`), a browser for one shopper (a shopper token), or anyone (no
credentials, allowed only while no client key or token secret is set). One function for
the routes' dependencies and for `/recommend`'s fast path, so both decide alike.

Wrong credentials are counted per client address; past `auth_failures_per_minute` in a
minute, that address gets 429 with `Retry-After` until the minute is over, right key or
not, so a key cannot be guessed at the service's speed."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from recsvc.core.policy.tokens import verify_shopper_token
from recsvc.service.errors import Forbidden, TooManyRequests, Unauthorized
from recsvc.settings import Settings

WINDOW_S = 60.0


@dataclass(frozen=True)
class Caller:
    kind: Literal["operator", "client", "shopper", "open"]
    user_id: str | None = None  # the shopper a token speaks for

    @property
    def identified(self) -> bool:
        return self.kind != "open"

    def check_user(self, user_id: str | None, where: str) -> None:
        """A shopper token reads and writes its own shopper's data only."""
        if self.kind == "shopper" and user_id != self.user_id:
            raise Forbidden(f"{where}: the shopper token is for another user_id")


class AuthThrottle:
    """Failed attempts per client address, in fixed one-minute windows (per worker)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def check(self, address: str) -> None:
        start, failures = self._windows.get(address, (0.0, 0))
        now = self.clock()
        if failures >= self.per_minute and now - start < WINDOW_S:
            raise TooManyRequests("too many failed authentication attempts",
                                  retry_after=int(start + WINDOW_S - now) + 1)

    def failed(self, address: str) -> None:
        now = self.clock()
        start, failures = self._windows.get(address, (now, 0))
        if now - start >= WINDOW_S:
            start, failures = now, 0
        self._windows[address] = (start, failures + 1)
        if len(self._windows) > 100_000:  # forget finished windows rather than grow
            self._windows = {a: w for a, w in self._windows.items()
                             if now - w[0] < WINDOW_S}


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and secrets.compare_digest(given.encode(), expected.encode())


def authenticate(settings: Settings, throttle: AuthThrottle, header: Callable[[str], str | None],
                 address: str, operator_only: bool = False) -> Caller:
    """The caller of a request whose headers `header` reads (lower-case names)."""
    throttle.check(address)
    key = header("x-api-key") or header("x-client-key")
    authorization = header("authorization")
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:]
    token = header("x-shopper-token")
    client = settings.client_key.get_secret_value() if settings.client_key else None
    if operator_only:
        if not settings.api_key:
            raise Unauthorized("admin endpoints are disabled: set RECSVC_API_KEY")
        if key is not None and _matches(key, settings.api_key):
            return Caller("operator")
        if key is not None:
            throttle.failed(address)
        raise Unauthorized("missing or wrong API key (X-API-Key header)")
    if key is not None:
        if _matches(key, settings.api_key):
            return Caller("operator")
        if _matches(key, client):
            return Caller("client")
        throttle.failed(address)
        raise Unauthorized("wrong key (X-Client-Key or X-API-Key header)")
    if token is not None:
        secret = settings.shopper_token_secret
        if secret is None:
            raise Unauthorized("shopper tokens are not enabled on this service")
        user_id, why = verify_shopper_token(secret.get_secret_value().encode(), token,
                                            time.time())
        if user_id is None:
            throttle.failed(address)
            raise Unauthorized(why)
        return Caller("shopper", user_id)
    if client is not None or settings.shopper_token_secret is not None:
        raise Unauthorized("credentials required: X-Client-Key (the shop's backend) or "
                           "X-Shopper-Token (a browser)")
    return Caller("open")
