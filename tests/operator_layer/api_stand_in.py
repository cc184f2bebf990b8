"""A small real HTTP server standing in for the API server in client and start-up tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# answer(method, path with query, headers) -> (status, JSON payload, or a list of watch events)
Answer = Callable[[str, str, dict], tuple[int, object]]


def not_found(path: str) -> tuple[int, dict]:
    return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                 "message": f"{path} not found"}


class ApiStandIn:
    def __init__(self, answer: Answer):
        self.seen: list[tuple[str, str, str | None, bytes]] = []  # method, path, Authorization, body
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                request_body = self.rfile.read(length) if length else b""
                outer.seen.append((self.command, self.path, self.headers.get("Authorization"), request_body))
                status, payload = answer(self.command, self.path, dict(self.headers))
                if isinstance(payload, list):  # a watch: one JSON event per line
                    body = b"".join(json.dumps(event).encode() + b"\n" for event in payload)
                else:
                    body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if self.path.startswith("/apis/apps"):
                    self.send_header("Warning", '299 - "deprecated"')
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
