"""Who is calling: the operator (`RECSVC_API_KEY`), the storefront's backend
(`RECSVC_CLIENT_KEY`), a browser for one shopper (a shopper token), or anyone (no
credentials, allowed only while no client key or token secret is set). One gatekeeper
for the routes' dependencies and for `/recommend`'s fast path, so both decide alike.

Wrong credentials are counted per client address; past `auth_failures_per_minute` in a
minute, that address gets 429 with `Retry-After` until the minute is over, right key or
not, so a key cannot be guessed at the service's speed."""

from __future__ import annotations

import math
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

    def check_user(self, user_id: str | None, where: str) -> None:
        """A shopper token reads and writes its own shopper's data only."""
        if self.kind == "shopper" and user_id != self.user_id:
            raise Forbidden(f"{where}: the shopper token is for another user_id")

    def viewer(self, user_id: str | None) -> str | None:
        """Who is looking: the `user_id` given, or a token's own shopper."""
        if self.kind != "shopper":
            return user_id
        self.check_user(user_id or self.user_id, "user_id")
        return self.user_id


OPEN = Caller("open")
RANK = {"operator": 0, "client": 1, "shopper": 2, "open": 3}


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


class RateLimiter:
    """Requests per client as a token bucket (`rate` a second, bursts of `burst`), per
    worker; a client over it gets 429 with the seconds until its next request."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> None:
        now = self.clock()
        tokens, since = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - since) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            raise TooManyRequests(f"more than {self.rate:g} requests a second",
                                  retry_after=math.ceil((1.0 - tokens) / self.rate))
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # drop the full ones rather than grow
            self._buckets = {c: b for c, b in self._buckets.items()
                             if b[0] + (now - b[1]) * self.rate < self.burst}


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and secrets.compare_digest(given.encode(), expected.encode())


class Gatekeeper:
    """The service's door: who is calling (`storefront`, `operator`), the limit on
    failed attempts, and the per-client request limit (browsers and anonymous callers;
    the shop's backend and operators are not limited)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.throttle = AuthThrottle(settings.auth_failures_per_minute)
        self.limiter = (RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
                        if settings.rate_limit_per_s else None)
        self.locked = (settings.client_key is not None
                       or settings.shopper_token_secret is not None)
        # Nothing to decide: no credentials needed, none limited, every caller shown the
        # same reasons. The storefront's hottest path then reads no header at all.
        self.wide_open = (not self.locked and self.limiter is None
                          and settings.open_reasons == "full")

    def operator(self, header: Callable[[str], str | None], address: str) -> Caller:
        self.throttle.check(address)
        if not self.settings.api_key:
            raise Unauthorized("admin endpoints are disabled: set RECSVC_API_KEY")
        key = _key(header)
        if key is not None and _matches(key, self.settings.api_key):
            return Caller("operator")
        if key is not None:
            self.throttle.failed(address)
        raise Unauthorized("missing or wrong API key (X-API-Key header)")

    def storefront(self, header: Callable[[str], str | None], address: str) -> Caller:
        """The caller of a storefront request whose headers `header` reads (lower-case
        names), from `address`."""
        if self.wide_open:
            return OPEN
        self.throttle.check(address)
        caller = self._identify(header, address)
        if self.limiter is not None and caller.kind in ("open", "shopper"):
            self.limiter.take(f"shopper:{caller.user_id}" if caller.user_id else address)
        return caller

    def _identify(self, header: Callable[[str], str | None], address: str) -> Caller:
        """Every credential presented must hold (a valid key beside a forged token is
        refused); the caller is the strongest of them. An open service (neither a
        client key nor a token secret set) needs none, and ignores what proves nothing."""
        settings = self.settings
        client = settings.client_key.get_secret_value() if settings.client_key else None
        secret = settings.shopper_token_secret
        found: list[Caller] = []
        for key in _keys(header):
            if _matches(key, settings.api_key):
                found.append(Caller("operator"))
            elif _matches(key, client):
                found.append(Caller("client"))
            elif self.locked:
                self.throttle.failed(address)
                raise Unauthorized("wrong key (X-Client-Key or X-API-Key header)")
        token = header("x-shopper-token")
        if token is not None and secret is None and self.locked:
            raise Unauthorized("shopper tokens are not enabled on this service")
        if token is not None and secret is not None:
            user_id, why = verify_shopper_token(secret.get_secret_value().encode(), token,
                                                time.time())
            if user_id is None:
                self.throttle.failed(address)
                raise Unauthorized(why)
            found.append(Caller("shopper", user_id))
        if found:
            return min(found, key=lambda c: RANK[c.kind])
        if self.locked:
            raise Unauthorized("credentials required: X-Client-Key (the shop's backend) "
                               "or X-Shopper-Token (a browser)")
        return OPEN


def _key(header: Callable[[str], str | None]) -> str | None:
    key = header("x-api-key")
    authorization = header("authorization")
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:]
    return key


def _keys(header: Callable[[str], str | None]) -> list[str]:
    """The keys presented: `X-API-Key` (or a bearer token) and `X-Client-Key`."""
    return [k for k in (_key(header), header("x-client-key")) if k is not None]
