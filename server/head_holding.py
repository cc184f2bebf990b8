"""One write per response: the head goes out with the first piece of the body.

uvicorn writes a response's status line and headers when the application sends
``http.response.start`` and the body when it sends ``http.response.body``; uvloop sends each
write at once, so a small response costs two send() calls and two TCP segments. A response
cycle given ``HeadHoldingTransport`` in place of the connection's transport when its response
starts (server/whole_response.py) keeps the head until the next write (the first body chunk, or a
close) and sends both in one call.

Only for a request that is neither HEAD (whose body writes nothing, so the head would wait for
the close) nor waiting for ``100 Continue`` (that interim answer must not be held).
"""

from __future__ import annotations

# Above this a body is not copied to join it to its head: the two go to writelines() instead.
JOIN_LIMIT = 64 * 1024


class HeadHoldingTransport:
    __slots__ = ("_head", "_head_expected", "_transport")

    def __init__(self, transport):
        self._transport = transport
        self._head: bytes | None = None
        self._head_expected = True

    def write(self, data: bytes) -> None:
        if self._head_expected:  # the cycle's first write is the response head
            self._head_expected = False
            self._head = data
            return
        head = self._head
        if head is None:
            self._transport.write(data)
            return
        self._head = None
        if len(data) <= JOIN_LIMIT:
            self._transport.write(head + data)
        else:
            self._transport.writelines((head, data))

    def close(self) -> None:
        head = self._head
        if head is not None:  # a response started, never finished: its head still goes out first
            self._head = None
            self._transport.write(head)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name):  # anything else a cycle may ask of its transport
        return getattr(self._transport, name)


def holds_head(cycle, scope) -> bool:
    """Whether this request's cycle may hold its response head (see the module doc)."""
    return not cycle.waiting_for_100_continue and scope["method"] != "HEAD"
