"""Mirroring: copies of primary requests sent to mirror variants in the background.

Copies are queued only after the primary answer has been sent, into a bounded queue drained by a
few workers, so a slow or dead mirror can cost at most queue slots, never primary latency or
status codes. The queue is bounded by count and by the bytes of the bodies it holds (queued or
being sent); beyond either the copy is dropped (counted, reason "queue_full"). A mirror that
cannot be reached or does not answer in time is skipped for a short back-off instead of costing a
failed connect or a held worker per request (those copies are counted as dropped, reason
"unreachable").

A rollout's shadow track is mirrored the same way, with the primary answer attached: the worker
compares the two (compare.py) and counts the outcome per version.
"""

from __future__ import annotations

import asyncio
import logging
import time

from mlserving.server.router.compare import compare_answers
from mlserving.server.router.forwarding import Forwarder, UpstreamError
from mlserving.server.router.metrics import RouterMetrics
from mlserving.server.router.table import Variant

log = logging.getLogger("mlserving.router")

UNREACHABLE_BACKOFF_S = 1.0


class Mirror:
    def __init__(self, forwarder: Forwarder, metrics: RouterMetrics, queue_size: int = 1024,
                 workers: int = 16, timeout_s: float = 5.0, max_bytes: int = 16 << 20):
        self.forwarder = forwarder
        self.max_bytes = max_bytes
        self.held_bytes = 0
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
              body: bytes, primary: tuple[int, bytes] | None = None) -> None:
        """Queue a copy for each mirror; ``primary`` (status, body): compare the answers (shadow tracks)."""
        now = time.monotonic()
        for variant in mirrors:
            if self._down_until.get(variant.url, 0.0) > now:
                self._dropped(variant, "unreachable", primary)
                continue
            if self.held_bytes + len(body) > self.max_bytes:
                self._dropped(variant, "queue_full", primary)
                continue
            try:
                self._queue.put_nowait((variant, method, target, headers, body, primary))
            except asyncio.QueueFull:
                self._dropped(variant, "queue_full", primary)
                continue
            self.held_bytes += len(body)

    def _dropped(self, variant, reason: str, primary) -> None:
        self.metrics.mirror_dropped.labels(variant.name, variant.version, reason).inc()
        if primary is not None:
            self.metrics.shadow_comparisons.labels(variant.name, variant.version, "error").inc()

    async def _work(self) -> None:
        while True:
            variant, method, target, headers, body, primary = await self._queue.get()
            resp = None
            try:
                resp = await self.forwarder.send(variant, method, target, headers, body,
                                                 timeout_s=self.timeout_s, record_latency=False)
                outcome = "ok" if resp.status < 400 else "http_error"
            except UpstreamError as err:
                outcome = "failed"
                if err.kind in ("unreachable", "timeout"):
                    if self._down_until.get(variant.url, 0.0) <= time.monotonic():
                        log.warning("mirror %s failed (%s), skipping copies for %.0f s: %s",
                                    variant.name, err.kind, UNREACHABLE_BACKOFF_S, err.detail)
                    self._down_until[variant.url] = time.monotonic() + UNREACHABLE_BACKOFF_S
            except Exception:  # a mirror must never take a worker down
                log.exception("mirror copy to %s failed unexpectedly", variant.name)
                outcome = "failed"
            finally:
                self.held_bytes -= len(body)
            self.metrics.mirror_requests.labels(variant.name, variant.version, outcome).inc()
            if primary is not None:
                verdict = "error" if resp is None else compare_answers(primary[0], primary[1], resp.status, resp.body)
                self.metrics.shadow_comparisons.labels(variant.name, variant.version, verdict).inc()
