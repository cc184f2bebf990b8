"""Small raw-ASGI helpers for the hot paths: read the body with a size cap, send JSON."""

import itertools
import os

import orjson


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


# A random per-process prefix and a counter: unique across processes and restarts, and much
# cheaper per request than uuid4().
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):012x}"


def header_values(scope) -> tuple[str | None, int | None]:
    """The x-request-id and content-length request headers (one pass over the header list)."""
    request_id = length = None
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            request_id = value.decode("latin-1")
        elif key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
    return request_id, length


def usable_request_id(value: str | None) -> str | None:
    """A client's x-request-id is echoed only when it is short and printable; else we make one."""
    if value and len(value) <= 128 and value.isprintable():
        return value
    return None


async def read_body(receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def error_body(status: int, message: str, field: str | None, request_id: str) -> bytes:
    return orjson.dumps({"error": message, "field": field, "status": status, "request_id": request_id})


async def send_bytes(send, status: int, body: bytes, request_id: str, extra_headers: list,
                     content_type: bytes = b"application/json") -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode("latin-1", "replace")), *extra_headers],
    })
    await send({"type": "http.response.body", "body": body})
