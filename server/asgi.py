"""Small raw-ASGI helpers for the hot paths: read the body with a size cap, send bytes."""

import itertools
import os

from mlserving.server.whole_response import whole_messages


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


def header_values(scope) -> tuple[str | None, int | None, bytes | None, int | None]:
    """The x-request-id, content-length, content-type and inference-header-content-length (the v2
    binary extension's JSON length) request headers, in one pass over the header list (of repeated
    ones the first counts, as in the router). A content-length that is not an integer is None; an
    inference-header-content-length that is not one is -1 (the v2 binary reader refuses it)."""
    request_id = length = content_type = json_length = None
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            if request_id is None:
                request_id = value.decode("latin-1")
        elif key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif key == b"content-type" and content_type is None:
            content_type = value
        elif key == b"inference-header-content-length" and json_length is None:
            try:
                json_length = int(value)
            except ValueError:
                json_length = -1
    return request_id, length, content_type, json_length


MAX_REQUEST_ID_CHARS = 128


def usable_request_id(value: str | None) -> str | None:
    """The one rule for a client's x-request-id (server and router): echoed and passed on only when
    non-empty, at most 128 characters and printable (no tab, no control character); else a new id."""
    if value and len(value) <= MAX_REQUEST_ID_CHARS and value.isprintable():
        return value
    return None


def is_json_content_type(value: bytes | None) -> bool:
    """application/json, optionally with parameters (``; charset=utf-8``). Anything else, or none, is
    what a browser may send cross-origin without a preflight (text/plain, forms)."""
    if value is None:
        return False
    if value == b"application/json":  # what nearly every client sends
        return True
    return value.split(b";", 1)[0].strip().lower() == b"application/json"


def is_acceptable_content_type(value: bytes | None, json_length: int | None, open_inference: bool) -> bool:
    """JSON; or, on a v2 binary-extension request, any type: Triton's and KServe's clients send
    application/octet-stream with Inference-Header-Content-Length, a header a browser cannot add
    cross-origin without a preflight. On the v2 (Open Inference Protocol) path also none: Triton's
    tritonclient.http sends no content-type on a JSON-only request. The browser-form types stay
    refused everywhere."""
    if json_length is not None or is_json_content_type(value):
        return True
    return open_inference and value is None


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


def response_messages(scope, status: int, body: bytes, request_id: str, extra_head: bytes = b"",
                      content_type: bytes | None = None) -> tuple:
    """The messages of a response with its content type, length and x-request-id; ``extra_head``:
    more header lines (whole_response.head_lines)."""
    head = b"content-type: %s\r\nx-request-id: %s\r\n%s" % (
        content_type or b"application/json", request_id.encode("latin-1", "replace"), extra_head)
    return whole_messages(scope, status, head, body)


async def send_bytes(scope, send, status: int, body: bytes, request_id: str, extra_head: bytes = b"",
                     content_type: bytes | None = None) -> None:
    for message in response_messages(scope, status, body, request_id, extra_head, content_type):
        await send(message)
