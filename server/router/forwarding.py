"""Forwarding to the variants over keep-alive connection pools (one UpstreamPool per variant URL).

Bodies and headers are passed through as bytes: nothing on this path parses JSON.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from mlserving.server.router.http_pool import BadAnswer, ConnectFailed, ConnectionDropped, UpstreamPool
from mlserving.server.router.metrics import RouterMetrics
from mlserving.server.router.table import Variant

# Request headers that describe one hop, not the request: never passed upstream (the pool writes
# its own host and content-length).
HOP_BY_HOP_REQUEST = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                b"te", b"trailer", b"upgrade", b"host", b"content-length", b"expect"})
# Response headers the router sets itself or that belong to the upstream hop.
DROPPED_RESPONSE = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                              b"trailer", b"upgrade", b"content-length", b"date", b"server",
                              b"x-mlserving-variant", b"x-model-version", b"x-request-id"})

# Idle connections are not reused after this long: uvicorn (the server's default) closes them at 5 s.
UPSTREAM_KEEPALIVE_S = 4.0


class UpstreamError(Exception):
    """A variant gave no usable answer.

    kind: "unreachable" (connect failed, or the connection dropped before a full answer; safe to send
    elsewhere because predictions have no side effects), "timeout", or "protocol" (malformed answer).
    """

    def __init__(self, kind: str, variant: Variant, detail: str):
        self.kind = kind
        self.variant = variant
        self.detail = detail
        super().__init__(f"{kind}: variant {variant.name!r} ({variant.url}): {detail}")


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # lower-case names, filtered of hop-by-hop and router-owned headers
    body: bytes


class Forwarder:
    def __init__(self, metrics: RouterMetrics, timeout_s: float, max_idle_per_upstream: int = 256,
                 connect_timeout_s: float = 1.0, max_response_bytes: int = 4 << 20):
        self.metrics = metrics
        self.max_response_bytes = max_response_bytes
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle_per_upstream
        self._pools: dict[str, UpstreamPool] = {}

    def pool(self, url: str) -> UpstreamPool:
        pool = self._pools.get(url)
        if pool is None:
            pool = self._pools[url] = UpstreamPool(url, UPSTREAM_KEEPALIVE_S, self.max_idle,
                                                   self.connect_timeout_s, self.max_response_bytes)
        return pool

    def retain(self, urls: set[str]) -> None:
        """Close the idle connections of upstreams no longer in the table (in-flight ones finish)."""
        for url in list(self._pools):
            if url not in urls:
                self._pools.pop(url).close()

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    async def send(self, variant: Variant, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                   body: bytes, timeout_s: float | None = None, record_latency: bool = True) -> UpstreamResponse:
        limit = timeout_s or self.timeout_s
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                status, raw_headers, payload = await self.pool(variant.url).request(method, target, headers, body)
        except TimeoutError:
            raise UpstreamError("timeout", variant, f"no full answer within {limit:g} s") from None
        except ConnectFailed as exc:
            raise UpstreamError("unreachable", variant, str(exc)) from None
        except ConnectionDropped as exc:
            raise UpstreamError("unreachable", variant, str(exc)) from None
        except BadAnswer as exc:
            raise UpstreamError("protocol", variant, str(exc)) from None
        if record_latency:
            self.metrics.observe_upstream(variant.name, variant.version, time.perf_counter() - started)
        kept = [(k, v) for k, v in raw_headers if k not in DROPPED_RESPONSE]  # the pool lower-cases names
        return UpstreamResponse(status, kept, payload)
