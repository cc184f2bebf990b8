"""Forwarding to the variants over keep-alive connection pools.

One aiohttp ClientSession for the router's life; its TCPConnector keeps a pool of keep-alive
connections per upstream host. Bodies and headers are passed through as bytes: nothing on this
path parses JSON.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
from mlserving.server.router.metrics import RouterMetrics
from mlserving.server.router.table import Variant
from multidict import CIMultiDict

# Request headers that describe one hop, not the request: never passed upstream.
HOP_BY_HOP_REQUEST = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                b"te", b"trailer", b"upgrade", b"host", b"content-length", b"expect"})
# Response headers the router sets itself or that belong to the upstream hop.
DROPPED_RESPONSE = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                              b"trailer", b"upgrade", b"content-length", b"date", b"server",
                              b"x-mlserving-variant", b"x-model-version", b"x-request-id"})

# Idle connections are closed before uvicorn's default 5 s keep-alive timeout closes them from the
# other side, which keeps the reuse-of-a-closing-connection race rare (it is also retried).
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
    headers: list[tuple[bytes, bytes]]  # already filtered of hop-by-hop and router-owned headers
    body: bytes


class Forwarder:
    def __init__(self, metrics: RouterMetrics, timeout_s: float, connections_per_upstream: int = 256):
        self.metrics = metrics
        self.timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connections = connections_per_upstream
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._connections,
                                         keepalive_timeout=UPSTREAM_KEEPALIVE_S, ttl_dns_cache=10)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, variant: Variant, method: str, target: str, headers: CIMultiDict,
                   body: bytes, timeout: aiohttp.ClientTimeout | None = None,
                   record_latency: bool = True) -> UpstreamResponse:
        started = time.perf_counter()
        try:
            async with self._session.request(method, variant.url + target, headers=headers,
                                             data=body or None, allow_redirects=False,
                                             timeout=timeout or self._timeout) as resp:
                payload = await resp.read()
                status = resp.status
                raw = resp.raw_headers
        except TimeoutError:
            limit = (timeout or self._timeout).total
            raise UpstreamError("timeout", variant, f"no full answer within {limit:g} s") from None
        except (aiohttp.ClientConnectionError, ConnectionError) as exc:
            # Connect refused/reset, or the connection closed before the answer was complete.
            raise UpstreamError("unreachable", variant, _describe(exc)) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("protocol", variant, _describe(exc)) from None
        if record_latency:
            self.metrics.observe_upstream(variant.name, time.perf_counter() - started)
        headers_out = [(k, v) for k, v in raw if k.lower() not in DROPPED_RESPONSE]
        return UpstreamResponse(status, headers_out, payload)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
