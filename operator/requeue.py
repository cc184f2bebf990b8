"""A coalescing work queue of ModelDeployments to look at again, outside kopf's own handlers.

Child events and the periodic resync only *kick* a ModelDeployment (namespace, name). Kicks for
the same object within ``delay`` seconds collapse into one run, so a burst of Deployment status
updates costs one status refresh, and a hand-deleted child costs one reconcile. A kick that
asks for a full reconcile wins over one that asks for a status refresh. Transient failures are
retried with exponential backoff; permanent ones wait for the next change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mlserving.operator.reconcile import Result

log = logging.getLogger("mlserving.operator.requeue")

Key = tuple[str, str]


class Requeue:
    def __init__(self, full: Callable[[str, str], Result], status: Callable[[str, str], Result],
                 workers: int = 4, delay: float = 0.3, max_backoff: float = 60.0):
        self._full = full
        self._status = status
        self._workers = workers
        self._delay = delay
        self._max_backoff = max_backoff
        self._pending: dict[Key, bool] = {}  # key -> full reconcile wanted
        self._failures: dict[Key, int] = {}
        self._queue: asyncio.Queue[Key] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._worker(), name=f"mlserving requeue worker {i}")
                       for i in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def kick(self, namespace: str, name: str, full: bool, delay: float | None = None) -> None:
        """Ask for another look at a ModelDeployment. Call from the event loop's thread."""
        if self._queue is None:
            return
        key = (namespace, name)
        if key in self._pending:
            self._pending[key] = self._pending[key] or full
            return
        self._pending[key] = full
        self._loop.call_later(self._delay if delay is None else delay, self._queue.put_nowait, key)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            full = self._pending.pop(key, None)
            if full is None:
                continue
            action = self._full if full else self._status
            try:
                result = await asyncio.to_thread(action, *key)
            except Exception as exc:  # the actions catch their own errors; this is a last guard
                log.exception("re-reconcile of %s/%s crashed", *key)
                result = Result("temporary", str(exc), 5)
            if result.kind == "temporary":
                attempt = self._failures.get(key, 0) + 1
                self._failures[key] = attempt
                backoff = min(self._max_backoff, max(result.delay, 1.0) * 2 ** min(attempt - 1, 6))
                log.warning("%s/%s: %s; retrying in %.0fs", key[0], key[1], result.message, backoff)
                self.kick(*key, full=True, delay=backoff)
            else:
                self._failures.pop(key, None)
