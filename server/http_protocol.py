"""uvicorn's httptools protocol with the limits a server facing hostile clients needs.

uvicorn (0.54) puts no bound on the request head: httptools concatenates a header value chunk by
chunk (quadratic in its size), so one 100 MB header stalls the event loop for seconds; it has no
timeout for a connection that never sends a request, or sends its head or body slowly; and on
shutdown it closes idle keep-alive connections at once, failing a request the client has already
sent on them. This subclass adds, for the inference server and the router alike:

- request line + headers at most ``MAX_HEAD_BYTES``, at most ``MAX_HEADERS`` header lines: else
  431 and the connection closes (counted from the bytes received, before httptools builds values);
- a connection must start a request within the keep-alive timeout, finish its head within
  ``HEAD_TIMEOUT_S`` and its body within ``BODY_TIMEOUT_S`` more: else 408 and close;
- an answer sent before the request body was read (413, 415) closes the connection instead of
  reading the rest of the body;
- an ``Upgrade`` request is served as plain HTTP and the connection closes after the answer;
- a response's head and the first piece of its body leave in one write (server/head_holding.py),
  and the hot paths send a whole response as one message (server/whole_response.py);
- on shutdown an idle connection stays open ``DRAIN_GRACE_S`` longer: a request already on its way
  is answered with ``connection: close`` instead of being cut off.

Select it with ``uvicorn.run(..., http=PROTOCOL)`` (an import string, so worker processes load it).
"""

from __future__ import annotations

import os

import httptools
from mlserving.server.logs import error_body
from mlserving.server.whole_response import take_whole_responses
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "mlserving.server.http_protocol:LimitedHttpToolsProtocol"

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
DRAIN_GRACE_S = 1.0


def _seconds(name: str, default: float) -> float:
    value = float(os.environ.get(name, default))
    if value <= 0:
        raise ValueError(f"{name}: must be a positive number of seconds, got {value:g}")
    return value


# Environment, for both processes (tests shorten them): a silent connection is closed after
# HTTP_IDLE_TIMEOUT_S, a head must arrive within HTTP_HEAD_TIMEOUT_S of its first byte, a body
# within HTTP_BODY_TIMEOUT_S beyond that; SIGTERM waits at most HTTP_SHUTDOWN_TIMEOUT_S for answers.
IDLE_TIMEOUT_S = _seconds("HTTP_IDLE_TIMEOUT_S", 30.0)
HEAD_TIMEOUT_S = _seconds("HTTP_HEAD_TIMEOUT_S", 10.0)
BODY_TIMEOUT_S = _seconds("HTTP_BODY_TIMEOUT_S", 30.0)
SHUTDOWN_TIMEOUT_S = _seconds("HTTP_SHUTDOWN_TIMEOUT_S", 20.0)
# uvicorn.run settings that go with the protocol (both processes use them).
# No X-Forwarded-* rewriting of the client address and scheme: neither process uses them, and
# uvicorn's middleware for it costs every request.
UVICORN_SETTINGS = {"http": PROTOCOL, "ws": "none", "timeout_keep_alive": IDLE_TIMEOUT_S,
                    "timeout_graceful_shutdown": SHUTDOWN_TIMEOUT_S, "proxy_headers": False}


class _HeadTooLarge(Exception):
    """Raised from a parser callback; httptools turns it into an HttpParserError."""


def _raw_response(status: int, reason: bytes, message: str, field: str) -> bytes:
    body = error_body(status, message, field)
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n") % (status, reason, len(body))
    return head + body


HEAD_TOO_LARGE = _raw_response(
    431, b"Request Header Fields Too Large",
    f"headers: the request line and headers must be at most {MAX_HEAD_BYTES} bytes in at most "
    f"{MAX_HEADERS} header lines", "headers")
HEAD_TIMEOUT = _raw_response(408, b"Request Timeout",
                             f"headers: the request head must arrive within {HEAD_TIMEOUT_S:g} s", "headers")
BAD_REQUEST = _raw_response(400, b"Bad Request", "request: not a valid HTTP/1.1 request", "request")
BODY_TIMEOUT = _raw_response(408, b"Request Timeout",
                             f"body: the request body must arrive within {BODY_TIMEOUT_S:g} s of the headers",
                             "body")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._in_head = True      # between a request's first byte (or the connection) and its headers
        self._head_bytes = 0
        self._too_many_headers = False
        self._deadline = 0.0      # loop time by which the head (or the body) must be in; 0: none
        self._draining = False

    # -- connection ----------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        _start_sweeper(self.loop, self.server_state)
        # uvicorn arms its keep-alive timer only after a response: a silent connection would stay.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return
        self._unset_keepalive_if_required()
        head_began_earlier = self._in_head and self._head_bytes > 0
        if self._in_head and not self._deadline:
            self._deadline = self.loop.time() + HEAD_TIMEOUT_S
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Served as plain HTTP; what follows the head is not parsed, so the connection closes
            # after the answer.
            if self.cycle is not None:
                self.cycle.keep_alive = False
        except httptools.HttpParserError:
            if self._too_many_headers:
                return self._refuse(HEAD_TOO_LARGE)
            self.logger.warning("Invalid HTTP request received.")
            return self._refuse(BAD_REQUEST)
        if self._in_head and not self.transport.is_closing():
            # Whole chunks are counted once the head spans more than one: the head held by httptools
            # never exceeds the limit by more than one read.
            self._head_bytes += len(data) if head_began_earlier else 1
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(HEAD_TOO_LARGE)

    def _refuse(self, response: bytes) -> None:
        self._deadline = 0.0
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the application stops waiting for a body
            self.cycle.message_event.set()
            if self.cycle.response_started:
                response = b""
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def _check_deadline(self, now: float) -> None:
        if self._deadline and now > self._deadline and not self.transport.is_closing():
            self._refuse(HEAD_TIMEOUT if self._in_head else BODY_TIMEOUT)

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        # Counted here, not per header: the byte cap already bounds the list, and a callback per
        # header would cost every request.
        if len(self.headers) > MAX_HEADERS:
            self._too_many_headers = True
            raise _HeadTooLarge
        self._in_head = False
        self._deadline += BODY_TIMEOUT_S  # the body gets BODY_TIMEOUT_S beyond the head's deadline
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None:
            return
        if cycle.scope is self.scope:  # this request's cycle, not yet running (an upgrade made none)
            take_whole_responses(cycle)
        if self._draining:
            cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._deadline = 0.0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            # Answered before the body was read (413, 415): do not read a body nobody wants.
            self.transport.close()
            return
        self._in_head = True
        self._head_bytes = 0
        super().on_response_complete()
        if self._draining and not self.transport.is_closing():
            self.transport.close()

    # -- shutdown ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            if self._head_bytes or self.pipeline:
                return  # a request is arriving: it is answered with connection: close
            self.loop.call_later(DRAIN_GRACE_S, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete) \
                and not self._head_bytes:
            self.transport.close()


SWEEP_INTERVAL_S = 0.5


def _start_sweeper(loop, server_state) -> None:
    """One timer per server checks every connection's deadline: cheaper than a timer per request."""
    if getattr(server_state, "mlserving_sweeper", False):
        return
    server_state.mlserving_sweeper = True

    def sweep():
        now = loop.time()
        for conn in list(server_state.connections):
            check = getattr(conn, "_check_deadline", None)
            if check is not None:
                check(now)
        loop.call_later(SWEEP_INTERVAL_S, sweep)

    loop.call_later(SWEEP_INTERVAL_S, sweep)
