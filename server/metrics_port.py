"""The metrics port: ``/metrics`` on a port of its own (9090, named ``metrics`` in the pods).

A separate port lets a NetworkPolicy admit scrapers without admitting prediction traffic. It is a
small threaded HTTP server beside the event loop: it only wakes up for a scrape, so the request
path never sees it. Server and router both use it, each with its own render function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mlserving.server.logs import error_body

DEFAULT_METRICS_PORT = 9090
METRICS_PATH = "/metrics"

Render = Callable[[], tuple[bytes, str]]  # () -> (exposition body, content type)


class MetricsPortError(OSError):
    """The metrics port could not be bound; the message names the port and the flag."""


def _handler(render: Render) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?", 1)[0] != METRICS_PATH:
                status, content_type = 404, "application/json"
                body = error_body(404, f"path: {self.path} is not served here; the metrics port serves only "
                                       f"{METRICS_PATH}", "path")
            else:
                body, content_type = render()
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # scrapes are not worth a log line each
            pass

    return MetricsHandler


class MetricsServer:
    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread):
        self._httpd = httpd
        self._thread = thread

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def start_metrics_server(host: str, port: int, render: Render, flag: str) -> MetricsServer:
    """Serves ``render()`` at ``/metrics`` on host:port from a daemon thread.

    Raises MetricsPortError naming ``flag`` when the port cannot be bound.
    """
    try:
        httpd = ThreadingHTTPServer((host, port), _handler(render))
    except OSError as exc:
        raise MetricsPortError(f"{flag}: cannot listen on {host}:{port} for /metrics ({exc.strerror or exc}); "
                               f"choose another port or 0 to serve /metrics on the main port only") from None
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5},
                              name="metrics-port", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread)
