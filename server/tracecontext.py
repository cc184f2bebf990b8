"""W3C Trace Context (``traceparent``): read it, or make one when a request arrives without.

``traceparent: 00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>``. We record no spans;
the router passes a valid header on unchanged (the server then logs the client's trace id) and
starts a trace for requests that carry none, so router and server log lines of one request share
a ``trace_id``. Reading is done only where a line is logged or an error answered: a successful
request with debug logging off never parses the header.
"""

from __future__ import annotations

import itertools
import os

TRACEPARENT = b"traceparent"
_HEX = frozenset(b"0123456789abcdef")
_ZERO_TRACE = b"0" * 32
_ZERO_PARENT = b"0" * 16

# A random per-process prefix and a counter: unique across processes and cheaper than urandom per
# request (trace ids need to be unique, not secret).
_TRACE_PREFIX = os.urandom(8).hex().encode()
_SPAN_PREFIX = os.urandom(4).hex().encode()
_counter = itertools.count(1)


def trace_id_of(value: bytes | None) -> str | None:
    """The trace id of a valid version-00 ``traceparent`` value, else None."""
    if value is None or len(value) != 55:
        return None
    if value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-" or value[:2] != b"00":
        return None
    trace, parent, flags = value[3:35], value[36:52], value[53:55]
    if not (_HEX.issuperset(trace) and _HEX.issuperset(parent) and _HEX.issuperset(flags)):
        return None
    if trace == _ZERO_TRACE or parent == _ZERO_PARENT:
        return None
    return trace.decode()


def trace_id_in(headers) -> str | None:
    """The trace id of the first ``traceparent`` in an ASGI header list, if it is valid."""
    for key, value in headers:
        if key == TRACEPARENT:
            return trace_id_of(value)
    return None


def new_traceparent() -> bytes:
    """A fresh ``traceparent`` (not sampled: we record nothing) for a request that had none."""
    n = next(_counter)
    return b"00-%s%016x-%s%08x-00" % (_TRACE_PREFIX, n, _SPAN_PREFIX, n & 0xFFFFFFFF)
