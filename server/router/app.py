"""The router as a raw ASGI application (no framework on the forward path).

Paths forwarded to a variant: /predict, /predict/batch and everything under /v2/. The router
answers /health/live, /health/ready, /metrics and /openapi.json itself; anything else is a JSON 404.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time

from mlserving.server.asgi import BodyTooLarge, ClientGone, new_request_id, read_body, usable_request_id
from mlserving.server.logs import clip, error_body
from mlserving.server.router.forwarding import HOP_BY_HOP_REQUEST, Forwarder, UpstreamError, UpstreamResponse
from mlserving.server.router.metrics import NO_VARIANT, RouterMetrics
from mlserving.server.router.mirroring import Mirror
from mlserving.server.router.openapi import DOCUMENT
from mlserving.server.router.selection import Route, Selector
from mlserving.server.router.table import TableError, parse_table
from mlserving.server.router.watched import watch
from mlserving.server.tracecontext import TRACEPARENT, new_traceparent, trace_id_of
from mlserving.server.whole_response import head_lines, whole_messages

log = logging.getLogger("mlserving.router")

FORWARDED_EXACT = frozenset({"/predict", "/predict/batch"})
FORWARDED_PREFIX = "/v2/"
JSON_HEADERS = [(b"content-type", b"application/json")]
OPENAPI = json.dumps(DOCUMENT).encode()
_ERROR_STATUS = {"timeout": 504, "unreachable": 502, "protocol": 502}


def _json(payload: dict) -> bytes:
    return json.dumps(payload).encode()


class RouterApp:
    def __init__(self, source, timeout_s: float = 10.0, mirror_queue: int = 1024, mirror_workers: int = 16,
                 max_idle_per_upstream: int = 256, max_body_bytes: int = 1 << 20,
                 connect_timeout_s: float = 1.0, max_response_bytes: int = 4 << 20,
                 mirror_queue_bytes: int = 16 << 20):
        self.source = source
        self.max_body_bytes = max_body_bytes
        self.metrics = RouterMetrics()
        self.forwarder = Forwarder(self.metrics, timeout_s, max_idle_per_upstream, connect_timeout_s,
                                   max_response_bytes)
        self.mirror = Mirror(self.forwarder, self.metrics, queue_size=mirror_queue, workers=mirror_workers,
                             max_bytes=mirror_queue_bytes)
        self.selector: Selector | None = None
        self.guard = None  # a security.Guard when auth or a rate limit is on
        self.watches: list = []  # (directory, reload, what): mounted Secrets polled while serving
        self._watch_tasks: list[asyncio.Task] = []
        self._source_task: asyncio.Task | None = None
        self._failover_log: dict[str, tuple[float, int]] = {}
        self.debug = log.isEnabledFor(logging.DEBUG)  # per-request lines: decided once, at start

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
        selector = Selector(table)
        self.selector = selector
        self.forwarder.retain({v.url for v in table.variants} | {t.url for v in table.variants for t in v.tracks})
        self.metrics.table_in_force(table.generation, [(r.name, r.version, r.buckets / 100) for r in selector.routes]
                                    + [(v.name, v.version, 0) for v in table.variants if not v.live])
        log.info("routing table %s in force (from %s)", table.describe(), origin)
        return True

    # -- ASGI -----------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            guard = self.guard
            if guard is not None and not path.startswith("/health/"):
                selector = self.selector
                refused = guard.check(scope, selector.sticky_name if selector is not None else None)
                if refused is not None:
                    status, headers, body = refused
                    return await self._respond(send, status, body, JSON_HEADERS + headers)
            if path in FORWARDED_EXACT or path.startswith(FORWARDED_PREFIX):
                await self._forward(scope, receive, send)
            elif path == "/health/live":
                await self._respond(send, 200, _json({"status": "live"}), JSON_HEADERS)
            elif path == "/health/ready":
                await self._ready(send)
            elif path == "/openapi.json":
                await self._respond(send, 200, OPENAPI, JSON_HEADERS)
            elif path == "/metrics":
                await self._respond(send, 200, self.metrics.render(),
                                    [(b"content-type", self.metrics.content_type.encode())])
            else:
                await self._respond(send, 404, error_body(
                    404, f"path: no route for {clip(path, 200)}; the router forwards /predict, /predict/batch "
                    "and /v2/*", "path"), JSON_HEADERS)
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
        self._watch_tasks = [asyncio.create_task(watch(directory, reload, what), name=f"watch-{what}")
                             for directory, reload, what in self.watches]
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
        for task in self._watch_tasks:
            task.cancel()
        await asyncio.gather(*self._watch_tasks, return_exceptions=True)
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
        started = time.perf_counter()
        selector = self.selector  # one table for the whole request, whatever arrives meanwhile
        sticky_name = selector.sticky_name if selector is not None else None
        sticky_key = request_id = traceparent = length = None
        headers = []
        for name, value in scope["headers"]:
            if name in HOP_BY_HOP_REQUEST:
                if name == b"content-length" and length is None:
                    length = value
                continue
            if name == b"x-request-id":
                if request_id is None:
                    request_id = value
                continue
            if name == TRACEPARENT:  # passed on below: as it came when valid, else a new one
                if traceparent is None:
                    traceparent = value
                continue
            if name == sticky_name and sticky_key is None and value:  # empty value: not sticky
                sticky_key = value
            headers.append((name, value))
        # The server's rule, so the id in the client's answer and in the server's log are the same.
        request_id = (usable_request_id(request_id.decode("latin-1")) if request_id is not None else None) \
            or new_request_id()
        request_id = request_id.encode("latin-1")
        if traceparent is None or trace_id_of(traceparent) is None:
            traceparent = new_traceparent()
        headers.append((b"x-request-id", request_id))
        headers.append((TRACEPARENT, traceparent))
        try:
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                raise BodyTooLarge  # refused before reading a byte of it
            body = await read_body(receive, self.max_body_bytes)
        except ClientGone:  # the client disconnected before sending its whole body
            return
        except BodyTooLarge:
            await self._refuse(send, scope, 413, f"body: larger than the router's limit of {self.max_body_bytes} "
                               "bytes (--max-body-bytes)", "body", request_id, traceparent, started)
            return
        if selector is None:
            await self._refuse(send, scope, 503, "the router has no valid routing table yet", None,
                               request_id, traceparent, started)
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
                try:
                    # A prediction is idempotent: one more try within the variant first (a new
                    # connection, which its Service may send to another of its pods).
                    resp = await self.forwarder.send(variant, method, target, headers, body)
                except UpstreamError as again:
                    if again.kind != "unreachable":
                        raise
                    fallback = selector.failover_for(variant)
                    if fallback is None:
                        raise
                    self._log_failover(variant, fallback, again)
                    self.metrics.failovers.labels(variant.name, fallback.name).inc()
                    variant = fallback
                    tried.append(variant.name)
                    resp = await self.forwarder.send(variant, method, target, headers, body)
        except UpstreamError as err:
            status = await self._upstream_failed(send, err, request_id, traceparent, tried)
            self._log_request(scope, status, err.variant, request_id, traceparent, started, err.detail)
            return

        status = resp.status
        if status >= 500:
            status = await self._upstream_5xx(send, variant, resp, request_id, traceparent)
        else:
            self.metrics.count_request(variant.name, variant.version, status)
            head = b"%s%sx-request-id: %s\r\n" % (head_lines(resp.headers), variant.identity, request_id)
            for message in whole_messages(scope, status, head, resp.body):
                await send(message)
        if status >= 400 or self.debug:
            self._log_request(scope, status, variant, request_id, traceparent, started,
                              f"variant answered HTTP {resp.status}" if status >= 400 else None)
        mirrors = selector.mirrors
        if mirrors:
            self.mirror.offer(mirrors, method, target, headers, body)
        if variant.shadows:  # a rollout's shadow phase: compare the new version's answer with this one
            self.mirror.offer(variant.shadows, method, target, headers, body, (resp.status, resp.body))

    async def _refuse(self, send, scope, status: int, message: str, field: str | None, request_id: bytes,
                      traceparent: bytes, started: float) -> None:
        """A request the router answers itself, without reaching a variant."""
        self.metrics.count_request(NO_VARIANT, NO_VARIANT, status)
        rid = request_id.decode("latin-1")
        await self._respond(send, status, error_body(status, message, field, rid, trace_id_of(traceparent),
                                                     variant=None), JSON_HEADERS + [(b"x-request-id", request_id)])
        self._log_request(scope, status, None, request_id, traceparent, started, message)

    def _log_request(self, scope, status: int, variant: Route | None, request_id: bytes, traceparent: bytes,
                     started: float, error: str | None) -> None:
        """One JSON line per request at debug, per failure (status >= 400) at warning."""
        fields = {"request_id": request_id.decode("latin-1"), "trace_id": trace_id_of(traceparent),
                  "method": scope["method"], "path": scope["path"], "status": status,
                  "variant": variant.name if variant else None, "version": variant.version if variant else None,
                  "duration_ms": round((time.perf_counter() - started) * 1000, 3)}
        if status >= 400:
            log.warning("request failed", extra={**fields, "error": error})
        else:
            log.debug("request", extra=fields)

    def _log_failover(self, failed: Route, fallback: Route, err: UpstreamError) -> None:
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
    def _variant_headers(variant: Route, request_id: bytes) -> list:
        return JSON_HEADERS + [(b"x-mlserving-variant", variant.name.encode()),
                               (b"x-model-version", variant.version.encode()),
                               (b"x-request-id", request_id)]

    async def _upstream_failed(self, send, err: UpstreamError, request_id: bytes, traceparent: bytes,
                               tried: list[str]) -> int:
        status = _ERROR_STATUS[err.kind]
        variant = err.variant
        self.metrics.count_request(variant.name, variant.version, status)
        what = {"timeout": "did not answer in time", "unreachable": "could not be reached",
                "protocol": "sent an invalid answer"}[err.kind]
        await self._respond(send, status, error_body(
            status, f"variant {variant.name!r} {what}: {err.detail}", None, request_id.decode("latin-1"),
            trace_id_of(traceparent), variant=variant.name, version=variant.version, tried=tried),
            self._variant_headers(variant, request_id))
        return status

    async def _upstream_5xx(self, send, variant: Route, resp: UpstreamResponse, request_id: bytes,
                            traceparent: bytes) -> int:
        status = resp.status if resp.status in (503, 504) else 502
        self.metrics.count_request(variant.name, variant.version, status)
        await self._respond(send, status, error_body(
            status, f"variant {variant.name!r} answered HTTP {resp.status}", None, request_id.decode("latin-1"),
            trace_id_of(traceparent), variant=variant.name, version=variant.version,
            upstream_status=resp.status, upstream_body=resp.body[:1000].decode("utf-8", "replace")),
            self._variant_headers(variant, request_id))
        return status
