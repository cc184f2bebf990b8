"""A whole response in one ASGI message, written in one call.

The hot paths answer small bodies with headers they build from values checked once (the content
type, the request id, the model's name and version). Sent as the two standard ASGI messages,
uvicorn checks every header against two regular expressions, lower-cases it and builds the head
on each request, and the two awaits and message dicts cost as much again. Where the server
advertises the ``mlserving.whole_response`` extension in the scope (server/http_protocol.py does),
the application sends instead::

    {"type": "mlserving.http.response", "status": 200, "head": b"name: value\\r\\n...", "body": b"..."}

``head`` is the response's own header lines, each ending in CRLF, lower-case names and values
already valid for HTTP; ``content-length`` is added here, with the server's default headers
(server, date) and ``connection: close`` when the connection does not stay open. Elsewhere (another
ASGI server, an in-process test client) ``whole_messages`` makes the same response the two
standard messages.
"""

from __future__ import annotations

from mlserving.server.head_holding import HeadHoldingTransport, holds_head
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

EXTENSION = "mlserving.whole_response"
MESSAGE_TYPE = "mlserving.http.response"


def head_lines(headers) -> bytes:
    """``[(name, value), ...]`` as header lines, for a ``head``."""
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


def split_head(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header list of a ``head`` (for the standard messages)."""
    return [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n") if line]


def whole_messages(scope, status: int, head: bytes, body: bytes) -> tuple:
    """The ASGI messages of one response: one where the server offers the extension, else two.
    (A plain function the caller loops over: a coroutine per layer costs every request.)"""
    if EXTENSION in scope.get("extensions", ()):
        return ({"type": MESSAGE_TYPE, "status": status, "head": head, "body": body},)
    headers = [(b"content-length", b"%d" % len(body)), *split_head(head)]
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})


_defaults_of: list | None = None   # the server's default header list last encoded (it changes each second)
_defaults_head = b""


def _default_head(default_headers: list) -> bytes:
    global _defaults_of, _defaults_head
    if default_headers is not _defaults_of:
        _defaults_head = head_lines(default_headers)
        _defaults_of = default_headers
    return _defaults_head


class WholeResponseCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, taking ``mlserving.http.response`` messages as well; a
    response sent as the standard messages has its head held for its first body piece
    (server/head_holding.py)."""

    async def send(self, message) -> None:
        if message["type"] != MESSAGE_TYPE:
            if message["type"] == "http.response.start" and not self.response_started and holds_head(self, self.scope):
                self.transport = HeadHoldingTransport(self.transport)
            return await super().send(message)
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.response_started:
            raise RuntimeError(f"Unexpected ASGI message {MESSAGE_TYPE!r}: the response has already started.")
        self.response_started = True
        self.waiting_for_100_continue = False
        body = message["body"]
        close = b"" if self.keep_alive else b"connection: close\r\n"
        data = b"%s%s%scontent-length: %d\r\n%s\r\n%s" % (
            STATUS_LINE[message["status"]], _default_head(self.default_headers), message["head"], len(body), close,
            b"" if self.scope["method"] == "HEAD" else body)
        self.transport.write(data)
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


def take_whole_responses(cycle) -> None:
    """Let this cycle (not yet running) take whole-response messages, and tell its application so."""
    cycle.__class__ = WholeResponseCycle
    cycle.scope.setdefault("extensions", {})[EXTENSION] = {}
