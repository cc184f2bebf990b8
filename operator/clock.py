"""The operator's one source of time, so tests can move it (tests/operator/fake_kubeapi.FakeClock)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


SYSTEM = SystemClock()


def rfc3339(clock: Clock, micro: bool = False) -> str:
    """Wall-clock time as Kubernetes writes it: ``2026-01-01T00:00:00Z`` (MicroTime with ``micro``)."""
    stamp = datetime.fromtimestamp(clock.time(), UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")
