"""Bearer-token auth and a per-pod token-bucket rate limit, checked before a request is forwarded.

Auth (``--auth-tokens-dir``): every visible file of the directory is one valid token (its content,
surrounding whitespace stripped); the directory is re-read when it changes, so a key added to or
removed from the mounted Secret takes effect without a restart. A missing or empty directory
refuses every request with 503: the router never serves unchecked when auth was asked for.
Tokens are compared with ``hmac.compare_digest`` against every valid token (no early exit).

Rate limit (``--rate-limit-rps R --rate-limit-burst B --rate-limit-key token|header|client``): one
bucket of B tokens refilled at R per second per key, in this router pod only (the cluster-wide
rate is that times the router replicas). Over the limit: 429 with Retry-After.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from pathlib import Path

from mlserving.server.logs import error_body
from mlserving.server.router.metrics import RouterMetrics
from mlserving.server.router.watched import visible_files

log = logging.getLogger("mlserving.router")

RATE_LIMIT_KEYS = ("token", "header", "client")
MAX_BUCKETS = 100_000  # distinct keys kept; beyond it idle (full) buckets are forgotten


def _bearer(headers) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return None


class TokenAuth:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.tokens: tuple[bytes, ...] = ()

    def reload(self) -> None:
        tokens = []
        for path in visible_files(self.directory):
            value = path.read_bytes().strip()
            if value:
                tokens.append(value)
        if len(tokens) != len(self.tokens):
            log.warning("auth: %d valid token(s) from %s", len(tokens), self.directory)
        self.tokens = tuple(tokens)

    def refusal(self, presented: bytes | None) -> str | None:
        """None when ``presented`` is a valid token; else the reason: missing, invalid, not_configured."""
        tokens = self.tokens
        if not tokens:
            return "not_configured"
        if not presented:
            return "missing"
        valid = False
        for token in tokens:  # every token is compared: the time does not tell which one matched
            valid |= hmac.compare_digest(presented, token)
        return None if valid else "invalid"


class RateLimit:
    def __init__(self, rps: float, burst: int, key: str):
        self.rps, self.burst, self.key = rps, burst, key
        self._buckets: dict[bytes, list[float]] = {}

    def wait_for(self, key: bytes, now: float) -> float:
        """0 when a request for ``key`` may pass now (and takes its token); else seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rps)
        bucket[1] = now
        if tokens >= 1.0 - 1e-9:  # float error must not refuse a token that is due
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rps

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rps
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full_after}
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()

    def key_of(self, scope, token: bytes | None, sticky_header: bytes | None) -> bytes:
        """The bucket's key; without a token (or the sticky header) the client's address."""
        if self.key == "token" and token:
            return b"t:" + token
        if self.key == "header" and sticky_header is not None:
            for name, value in scope["headers"]:
                if name == sticky_header and value:
                    return b"h:" + value
        client = scope.get("client")
        return b"c:" + (client[0].encode() if client else b"")


class Guard:
    """Auth then rate limit; ``check`` returns None to go on, or (status, headers, body) to answer."""

    def __init__(self, metrics: RouterMetrics, auth: TokenAuth | None, rate_limit: RateLimit | None):
        self.metrics, self.auth, self.rate_limit = metrics, auth, rate_limit

    def check(self, scope, sticky_header: bytes | None) -> tuple[int, list, bytes] | None:
        token = _bearer(scope["headers"]) if self.auth is not None or self.rate_limit is not None else None
        if self.auth is not None:
            reason = self.auth.refusal(token)
            if reason is not None:
                self.metrics.auth_refused.labels(reason).inc()
                return self._auth_refused(reason)
        if self.rate_limit is not None:
            limit = self.rate_limit
            wait = limit.wait_for(limit.key_of(scope, token, sticky_header), time.monotonic())
            if wait:
                self.metrics.rate_limited.labels(limit.key).inc()
                retry = max(1, math.ceil(wait))
                body = error_body(
                    429, f"rate limit: at most {limit.rps:g} requests per second with bursts of {limit.burst} "
                         f"per {limit.key} (this router pod); retry after {retry} s", "rateLimit",
                    limit={"requestsPerSecond": limit.rps, "burst": limit.burst, "key": limit.key},
                    retryAfterSeconds=retry)
                return 429, [(b"retry-after", str(retry).encode())], body
        return None

    def _auth_refused(self, reason: str) -> tuple[int, list, bytes]:
        if reason == "not_configured":
            return 503, [], error_body(
                503, f"auth: no valid token configured in {self.auth.directory} (--auth-tokens-dir); "
                     "refusing requests rather than serving them unchecked", "auth")
        message = {"missing": "auth: a bearer token is required (Authorization: Bearer <token>)",
                   "invalid": "auth: the bearer token is not valid"}[reason]
        challenge = b'Bearer realm="mlserving"' + (b', error="invalid_token"' if reason == "invalid" else b"")
        return 401, [(b"www-authenticate", challenge)], error_body(401, message, "auth")
