"""Mirroring: copies of primary requests sent to mirror variants in the background.

Copies are queued only after the primary answer has been sent, into a bounded queue drained by a
few workers, so a slow or dead mirror can cost at most queue slots, never primary latency or
status codes. A full queue drops the copy (counted). A mirror that cannot be reached is skipped
for a short back-off instead of costing a failed connect per request (those copies are counted as
dropped, reason "unreachable").
"""

from __future__ import annotations

import asyncio
import logging
import time

from mlserving.server.router.forwarding import Forwarder, UpstreamError
from mlserving.server.router.metrics import RouterMetrics
from mlserving.server.router.table import Variant

log = logging.getLogger("mlserving.router")

UNREACHABLE_BACKOFF_S = 1.0


class Mirror:
    def __init__(self, forwarder: Forwarder, metrics: RouterMetrics, queue_size: int = 1024,
                 workers: int = 16, timeout_s: float = 5.0):
        self.forwarder = forwarder
        self.metrics = metrics
        self.queue_size = queue_size
        self.workers = workers
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self._down_until: dict[str, float] = {}

    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._tasks = [asyncio.create_task(self._work(), name=f"mirror-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def offer(self, mirrors: tuple[Variant, ...], method: str, target: bytes, headers: list,
              body: bytes) -> None:
        now = time.monotonic()
        for variant in mirrors:
            if self._down_until.get(variant.name, 0.0) > now:
                self.metrics.mirror_dropped.labels(variant.name, "unreachable").inc()
                continue
            try:
                self._queue.put_nowait((variant, method, target, headers, body))
            except asyncio.QueueFull:
                self.metrics.mirror_dropped.labels(variant.name, "queue_full").inc()

    async def _work(self) -> None:
        while True:
            variant, method, target, headers, body = await self._queue.get()
            try:
                resp = await self.forwarder.send(variant, method, target, headers, body,
                                                 timeout_s=self.timeout_s, record_latency=False)
                outcome = "ok" if resp.status < 400 else "http_error"
            except UpstreamError as err:
                outcome = "failed"
                if err.kind == "unreachable":
                    if self._down_until.get(variant.name, 0.0) <= time.monotonic():
                        log.warning("mirror %s unreachable, skipping copies for %.0f s: %s",
                                    variant.name, UNREACHABLE_BACKOFF_S, err.detail)
                    self._down_until[variant.name] = time.monotonic() + UNREACHABLE_BACKOFF_S
            except Exception:  # a mirror must never take a worker down
                log.exception("mirror copy to %s failed unexpectedly", variant.name)
                outcome = "failed"
            self.metrics.mirror_requests.labels(variant.name, outcome).inc()
