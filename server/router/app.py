"""The router as a raw ASGI application (no framework on the forward path).

Paths forwarded to a variant: /predict, /predict/batch and everything under /v2/. The router
answers /health/live, /health/ready and /metrics itself; anything else is a JSON 404.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time

from mlserving.server.asgi import BodyTooLarge, ClientGone, read_body
from mlserving.server.router.forwarding import HOP_BY_HOP_REQUEST, Forwarder, UpstreamError, UpstreamResponse
from mlserving.server.router.metrics import RouterMetrics
from mlserving.server.router.mirroring import Mirror
from mlserving.server.router.selection import Selector
from mlserving.server.router.table import TableError, Variant, parse_table

log = logging.getLogger("mlserving.router")

FORWARDED_EXACT = frozenset({"/predict", "/predict/batch"})
FORWARDED_PREFIX = "/v2/"
JSON_HEADERS = [(b"content-type", b"application/json")]
_ERROR_STATUS = {"timeout": 504, "unreachable": 502, "protocol": 502}


def _json(payload: dict) -> bytes:
    return json.dumps(payload).encode()


class RouterApp:
    def __init__(self, source, timeout_s: float = 10.0, mirror_queue: int = 1024, mirror_workers: int = 16,
                 max_idle_per_upstream: int = 256, max_body_bytes: int = 16 << 20,
                 connect_timeout_s: float = 1.0):
        self.source = source
        self.max_body_bytes = max_body_bytes
        self.metrics = RouterMetrics()
        self.forwarder = Forwarder(self.metrics, timeout_s, max_idle_per_upstream, connect_timeout_s)
        self.mirror = Mirror(self.forwarder, self.metrics, queue_size=mirror_queue, workers=mirror_workers)
        self.selector: Selector | None = None
        self._source_task: asyncio.Task | None = None
        self._failover_log: dict[str, tuple[float, int]] = {}

    # -- routing table -------------------------------------------------------------------------
    def apply_table(self, raw: bytes | None, origin: str) -> bool:
        """Validate a table and put it in force; refuse it (log + metric) and keep the old one if invalid.

        The switch is one reference assignment on the event loop: a request in flight finishes
        under the table it started with, the next one uses the new table.
        """
        try:
            if raw is None:
                raise TableError([f"routing table: key routing.json missing in {origin}"])
            table = parse_table(raw)
        except TableError as exc:
            self.metrics.tables_refused.inc()
            keeping = self.selector.table.describe() if self.selector else "no table (not ready)"
            log.error("routing table from %s refused: %s; still serving %s", origin, exc, keeping)
            return False
        self.selector = Selector(table)
        self.forwarder.retain({v.url for v in table.variants})
        self.metrics.table_generation.set(table.generation)
        self.metrics.tables_applied.inc()
        log.info("routing table %s in force (from %s)", table.describe(), origin)
        return True

    # -- ASGI -----------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path in FORWARDED_EXACT or path.startswith(FORWARDED_PREFIX):
                await self._forward(scope, receive, send)
            elif path == "/health/live":
                await self._respond(send, 200, _json({"status": "live"}), JSON_HEADERS)
            elif path == "/health/ready":
                await self._ready(send)
            elif path == "/metrics":
                await self._respond(send, 200, self.metrics.render(),
                                    [(b"content-type", self.metrics.content_type.encode())])
            else:
                await self._respond(send, 404, _json({
                    "error": f"no route for {path}; the router forwards /predict, /predict/batch and /v2/*"}),
                    JSON_HEADERS)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        # Everything allocated so far lives as long as the process: keep it out of the collector's
        # full passes, which would otherwise walk it during requests.
        gc.collect()
        gc.freeze()
        self.mirror.start()
        self._source_task = asyncio.create_task(self._run_source(), name="routing-table-source")

    async def _run_source(self) -> None:
        try:
            await self.source.run(self.apply_table)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("routing table source %s stopped; the last good table keeps serving",
                          self.source.describe())

    async def shutdown(self) -> None:
        if self._source_task is not None:
            self._source_task.cancel()
            await asyncio.gather(self._source_task, return_exceptions=True)
        await self.mirror.stop()
        await self.forwarder.close()

    @staticmethod
    async def _respond(send, status: int, body: bytes, headers: list) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _ready(self, send) -> None:
        if self.selector is None:
            await self._respond(send, 503, _json({
                "status": "not ready", "reason": f"no valid routing table yet from {self.source.describe()}"}),
                JSON_HEADERS)
        else:
            await self._respond(send, 200, _json({
                "status": "ready", "generation": self.selector.table.generation}), JSON_HEADERS)

    # -- forward path ---------------------------------------------------------------------------
    async def _forward(self, scope, receive, send) -> None:
        try:
            body = await read_body(receive, self.max_body_bytes)
        except ClientGone:  # the client disconnected before sending its whole body
            return
        except BodyTooLarge:
            self.metrics.count_request("none", 413)
            await self._respond(send, 413, _json({
                "error": f"request body: larger than the router's limit of {self.max_body_bytes} bytes "
                         "(--max-body-bytes)", "variant": None}), JSON_HEADERS)
            return
        selector = self.selector  # one table for the whole request, whatever arrives meanwhile
        sticky_name = selector.sticky_name if selector is not None else None
        sticky_key = request_id = None
        headers = []
        for name, value in scope["headers"]:
            if name in HOP_BY_HOP_REQUEST:
                continue
            if name == b"x-request-id":
                if request_id is None:
                    request_id = value
                continue
            if name == sticky_name and sticky_key is None and value:  # empty value: not sticky
                sticky_key = value
            headers.append((name, value))
        if request_id is None:
            request_id = os.urandom(16).hex().encode()
        headers.append((b"x-request-id", request_id))

        if selector is None:
            self.metrics.count_request("none", 503)
            await self._respond(send, 503, _json({
                "error": "the router has no valid routing table yet", "variant": None,
                "requestId": request_id.decode("latin-1")}),
                JSON_HEADERS + [(b"x-request-id", request_id)])
            return

        target = scope.get("raw_path") or scope["path"].encode()
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        method = scope["method"]
        variant = selector.pick(sticky_key)
        tried = [variant.name]
        try:
            try:
                resp = await self.forwarder.send(variant, method, target, headers, body)
            except UpstreamError as err:
                if err.kind != "unreachable":
                    raise
                fallback = selector.failover_for(variant)
                if fallback is None:
                    raise
                self._log_failover(variant, fallback, err)
                self.metrics.failovers.labels(variant.name, fallback.name).inc()
                variant = fallback
                tried.append(variant.name)
                resp = await self.forwarder.send(variant, method, target, headers, body)
        except UpstreamError as err:
            await self._upstream_failed(send, err, request_id, tried)
            return

        if resp.status >= 500:
            await self._upstream_5xx(send, variant, resp, request_id)
        else:
            self.metrics.count_request(variant.name, resp.status)
            resp.headers += [*selector.identity_headers[variant.name], (b"x-request-id", request_id),
                             (b"content-length", str(len(resp.body)).encode())]
            await send({"type": "http.response.start", "status": resp.status, "headers": resp.headers})
            await send({"type": "http.response.body", "body": resp.body})
        mirrors = selector.mirrors
        if mirrors:
            self.mirror.offer(mirrors, method, target, headers, body)

    def _log_failover(self, failed: Variant, fallback: Variant, err: UpstreamError) -> None:
        """At most one line per failed variant every 5 s: an outage must not flood the log."""
        now = time.monotonic()
        last, skipped = self._failover_log.get(failed.name, (0.0, 0))
        if now - last < 5.0:
            self._failover_log[failed.name] = (last, skipped + 1)
            return
        self._failover_log[failed.name] = (now, 0)
        more = f" ({skipped} more failovers since the last line)" if skipped else ""
        log.warning("variant %s unreachable (%s); failing over to %s%s", failed.name, err.detail,
                    fallback.name, more)

    @staticmethod
    def _variant_headers(variant: Variant, request_id: bytes) -> list:
        return JSON_HEADERS + [(b"x-mlserving-variant", variant.name.encode()),
                               (b"x-model-version", variant.version.encode()),
                               (b"x-request-id", request_id)]

    async def _upstream_failed(self, send, err: UpstreamError, request_id: bytes, tried: list[str]) -> None:
        status = _ERROR_STATUS[err.kind]
        variant = err.variant
        self.metrics.count_request(variant.name, status)
        what = {"timeout": "did not answer in time", "unreachable": "could not be reached",
                "protocol": "sent an invalid answer"}[err.kind]
        await self._respond(send, status, _json({
            "error": f"variant {variant.name!r} {what}: {err.detail}", "variant": variant.name,
            "version": variant.version, "tried": tried, "requestId": request_id.decode("latin-1")}),
            self._variant_headers(variant, request_id))

    async def _upstream_5xx(self, send, variant: Variant, resp: UpstreamResponse, request_id: bytes) -> None:
        status = resp.status if resp.status in (503, 504) else 502
        self.metrics.count_request(variant.name, status)
        await self._respond(send, status, _json({
            "error": f"variant {variant.name!r} answered HTTP {resp.status}", "variant": variant.name,
            "version": variant.version, "upstreamStatus": resp.status,
            "upstreamBody": resp.body[:1000].decode("utf-8", "replace"),
            "requestId": request_id.decode("latin-1")}),
            self._variant_headers(variant, request_id))
