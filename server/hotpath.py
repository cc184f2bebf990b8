"""The raw-ASGI dispatcher in front of the FastAPI app.

POST /predict, /predict/batch and /v2/models/{name}[/versions/{version}]/infer are served here
directly (body read, orjson, hand-written validation, model, orjson) without FastAPI routing,
validation models or thread-pool hops; everything else goes to the FastAPI app. Every response,
from either side, carries an ``x-request-id`` header.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from mlserving.server.asgi import (
    BodyTooLarge,
    ClientGone,
    header_values,
    is_acceptable_content_type,
    new_request_id,
    read_body,
    response_messages,
    send_bytes,
    usable_request_id,
)
from mlserving.server.logs import clip, error_body
from mlserving.server.tracecontext import trace_id_in
from mlserving.server.validation import InputError

log = logging.getLogger("mlserving.server.request")

V2_MODELS = "/v2/models/"
V2_INFER = "/infer"


class HotResult(NamedTuple):
    body: bytes
    rows: int
    outcome: object  # what the metrics count for the task (see ServerMetrics.success)
    head: bytes = b""  # more header lines (whole_response.head_lines)
    content_type: bytes | None = None


class Call:
    """One hot-path request as its handler sees it."""

    __slots__ = ("body", "json_length", "model_name", "model_version", "request_id", "state")

    def __init__(self, state, request_id: str | None, json_length: int | None):
        self.state = state
        self.body = b""
        self.request_id = request_id
        self.json_length = json_length          # Inference-Header-Content-Length, when sent
        self.model_name: str | None = None      # from a v2 path
        self.model_version: str | None = None

    def rid(self) -> str:
        if self.request_id is None:
            self.request_id = new_request_id()
        return self.request_id


Handler = Callable[[Call], Awaitable[HotResult]]


def parse_v2_infer_path(path: str) -> tuple[str, str | None] | None:
    """``/v2/models/NAME/infer`` or ``/v2/models/NAME/versions/VERSION/infer`` → (NAME, VERSION)."""
    if not (path.startswith(V2_MODELS) and path.endswith(V2_INFER)):
        return None
    parts = path[len(V2_MODELS):-len(V2_INFER)].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2]
    return None


class HotPathDispatcher:
    def __init__(self, app, state, routes: dict[str, Handler], v2_infer: Handler):
        self.app = app
        self.state = state
        self.routes = routes
        self.v2_infer = v2_infer
        self.debug = log.isEnabledFor(logging.DEBUG)
        self._v2_targets: dict[str, tuple[str, str | None] | None] = {}  # path -> parsed, bounded

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)  # lifespan, websockets
        path = scope["path"]
        handler = self.routes.get(path)
        target = None
        if handler is None:
            target = self._v2_targets.get(path, False)
            if target is False:
                target = parse_v2_infer_path(path)
                if len(self._v2_targets) < 256:  # the few paths clients use; a scan of others is not kept
                    self._v2_targets[path] = target
        if handler is None and target is None:
            return await self._delegate(scope, receive, send)
        if scope["method"] != "POST":
            return await self._method_not_allowed(scope, send)
        if handler is not None:
            return await self._serve(handler, None, scope, receive, send)
        return await self._serve(self.v2_infer, target, scope, receive, send)

    async def _method_not_allowed(self, scope, send) -> None:
        request_id = usable_request_id(header_values(scope)[0]) or new_request_id()
        message = f"method: {scope['method']} is not allowed on {clip(scope['path'], 200)}; use POST"
        await send_bytes(scope, send, 405, error_body(405, message, "method", request_id, trace_id_in(scope["headers"])),
                         request_id, b"allow: POST\r\n")

    async def _serve(self, handler: Handler, target, scope, receive, send) -> None:
        start = time.perf_counter()
        state = self.state
        header_id, length, content_type, json_length = header_values(scope)
        call = Call(state, usable_request_id(header_id), json_length)
        if target is not None:
            call.model_name, call.model_version = target
        limit = state.config.max_body_bytes
        status = 200
        field = None
        try:
            if not is_acceptable_content_type(content_type, json_length, target is not None):
                raise InputError("content-type", "must be application/json, got "
                                 f"{content_type.decode('latin-1') if content_type else 'none'}", status=415)
            if length is not None and length > limit:
                raise BodyTooLarge
            call.body = await read_body(receive, limit)
            if state.model is None:
                status, message = 503, f"model not ready: {state.not_ready_reason}"
            else:
                result = await handler(call)
        except InputError as exc:
            status, message, field = exc.status, str(exc), exc.field
        except BodyTooLarge:
            status, field = 413, "body"
            message = f"body: must be at most {limit} bytes (MAX_BODY_BYTES)"
        except ClientGone:
            return
        except Exception as exc:
            log.exception("prediction failed", extra={"request_id": call.rid(), "path": scope["path"],
                                                      "trace_id": trace_id_in(scope["headers"])})
            status, message = 500, f"internal error: {type(exc).__name__}"
        request_id = call.rid()
        model_head = state.model_head
        if status == 200:
            for message in response_messages(scope, 200, result.body, request_id,
                                             model_head + result.head if result.head else model_head,
                                             result.content_type):
                await send(message)
            elapsed = time.perf_counter() - start
            state.metrics.success(result.rows, result.outcome, elapsed)
            if self.debug:
                log.debug("request", extra={"request_id": request_id, "trace_id": trace_id_in(scope["headers"]),
                                            "path": scope["path"], "status": 200, "rows": result.rows,
                                            "duration_ms": round(elapsed * 1000, 3)})
            return
        # Failures only from here on: reading the trace context costs nothing on the success path.
        trace_id = trace_id_in(scope["headers"])
        await send_bytes(scope, send, status, error_body(status, message, field, request_id, trace_id), request_id,
                         model_head)
        if status < 500:
            state.metrics.invalid()
        else:
            state.metrics.error()
        log.warning("request failed", extra={"request_id": request_id, "trace_id": trace_id, "path": clip(scope["path"]),
                                             "status": status, "error": clip(message)})

    async def _delegate(self, scope, receive, send) -> None:
        header_id, length, _, _ = header_values(scope)
        request_id = usable_request_id(header_id) or new_request_id()
        limit = self.state.config.max_body_bytes
        if length is not None and length > limit:
            message = f"body: must be at most {limit} bytes (MAX_BODY_BYTES)"
            await send_bytes(scope, send, 413, error_body(413, message, "body", request_id, trace_id_in(scope["headers"])),
                             request_id)
            return
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode("latin-1", "replace")

        debug = self.debug

        async def send_with_request_id(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append((b"x-request-id", encoded))
                message = {**message, "headers": headers}
                status = message["status"]
                if status >= 400:
                    log.warning("request failed", extra={"request_id": request_id,
                                                         "trace_id": trace_id_in(scope["headers"]),
                                                         "method": scope["method"], "path": clip(scope["path"]),
                                                         "status": status})
                elif debug:
                    log.debug("request", extra={"request_id": request_id, "trace_id": trace_id_in(scope["headers"]),
                                                "method": scope["method"], "path": clip(scope["path"]),
                                                "status": status})
            await send(message)

        await self.app(scope, receive, send_with_request_id)
