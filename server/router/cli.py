"""`mlserving router`: the A/B router process."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from mlserving.server.metrics_port import DEFAULT_METRICS_PORT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE",
                        help="routing table file (JSON, docs/api.md); re-read when it changes")
    source.add_argument("--configmap", metavar="NAMESPACE/NAME",
                        help="ConfigMap holding the routing table under the key routing.json, watched "
                             "through the Kubernetes API (in-cluster credentials, else kubeconfig)")
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="kubeconfig for --configmap outside a cluster (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="second port serving only /metrics (plain HTTP), 0 = off; /metrics stays on "
                             f"--port too (default: env METRICS_PORT, else {DEFAULT_METRICS_PORT})")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per-request upstream timeout; past it the client gets a JSON 504 (default 10)")
    parser.add_argument("--connect-timeout", type=float, default=1.0, metavar="SECONDS",
                        help="opening a connection to a variant; past it the request fails over like a "
                             "refused connection (default 1)")
    parser.add_argument("--mirror-queue", type=int, default=1024, metavar="N",
                        help="mirror copies waiting to be sent before new ones are dropped (default 1024)")
    parser.add_argument("--mirror-queue-bytes", type=int, default=16 << 20, metavar="N",
                        help="request bodies held for mirrors (queued or being sent) before new copies are "
                             "dropped (default 16 MiB)")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20, metavar="N",
                        help="largest request body forwarded, checked from Content-Length before reading; "
                             "larger ones get a JSON 413 (default 1 MiB, the server's MAX_BODY_BYTES)")
    parser.add_argument("--max-response-bytes", type=int, default=4 << 20, metavar="N",
                        help="largest answer body read from a variant; a larger one gives the client a JSON "
                             "502 naming the variant (default 4 MiB)")
    parser.add_argument("--auth-tokens-dir", metavar="DIR",
                        help="require a bearer token: every visible file in DIR (a mounted Secret) is one valid "
                             "token; re-read when DIR changes; missing or empty: every request but health gets 503")
    parser.add_argument("--rate-limit-rps", type=float, metavar="R",
                        help="per-key token bucket in this router pod: R requests per second (with --rate-limit-burst)")
    parser.add_argument("--rate-limit-burst", type=int, metavar="B", help="bucket size (default: R rounded up)")
    parser.add_argument("--rate-limit-key", choices=["token", "header", "client"], default="client",
                        help="bucket per bearer token, per sticky-header value, or per client address "
                             "(default client; without a token or the header: the client address)")
    parser.add_argument("--tls-dir", metavar="DIR",
                        help="serve HTTPS with DIR/tls.crt and DIR/tls.key, reloaded when they change")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def build_source(args):
    from mlserving.server.router.sources import ConfigMapSource, FileSource

    if args.config:
        return FileSource(args.config)
    namespace, name = ConfigMapSource.parse_ref(args.configmap)
    source = ConfigMapSource(namespace, name, kubeconfig=args.kubeconfig)
    source.load_credentials()
    return source


def configure_security(app, args) -> None:
    from mlserving.server.router.security import Guard, RateLimit, TokenAuth

    auth = limit = None
    if args.auth_tokens_dir:
        auth = TokenAuth(args.auth_tokens_dir)
        auth.reload()
        app.watches.append((auth.directory, auth.reload, "auth tokens"))
    if args.rate_limit_rps is not None:
        burst = args.rate_limit_burst or max(1, math.ceil(args.rate_limit_rps))
        limit = RateLimit(args.rate_limit_rps, burst, args.rate_limit_key)
    if auth is not None or limit is not None:
        app.guard = Guard(app.metrics, auth, limit)


def _fail(message: str) -> int:
    print(f"mlserving router: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from mlserving.server.http_protocol import UVICORN_SETTINGS
    from mlserving.server.router.app import RouterApp
    from mlserving.server.router.tls import CertificateReloader, TlsError, certificate_files

    if args.timeout <= 0:
        return _fail(f"--timeout: must be a positive number of seconds, got {args.timeout:g}")
    if not 0 < args.connect_timeout <= args.timeout:
        return _fail(f"--connect-timeout: must be above 0 and at most --timeout, got {args.connect_timeout:g}")
    if args.mirror_queue < 1:
        return _fail(f"--mirror-queue: must be at least 1, got {args.mirror_queue}")
    for flag in ("max_body_bytes", "max_response_bytes", "mirror_queue_bytes"):
        if getattr(args, flag) < 1:
            return _fail(f"--{flag.replace('_', '-')}: must be at least 1, got {getattr(args, flag)}")
    if args.metrics_port is None:
        try:
            args.metrics_port = int(os.environ.get("METRICS_PORT") or DEFAULT_METRICS_PORT)
        except ValueError:
            return _fail(f"METRICS_PORT: must be an integer, got {os.environ['METRICS_PORT']!r}")
    if not 0 <= args.metrics_port <= 65535 or args.metrics_port == args.port:
        return _fail(f"--metrics-port: must be 0 (off) or 1-65535 and differ from --port, got {args.metrics_port}")
    if args.rate_limit_rps is not None and not args.rate_limit_rps > 0:
        return _fail(f"--rate-limit-rps: must be above 0, got {args.rate_limit_rps:g}")
    if args.rate_limit_burst is not None and (args.rate_limit_rps is None or args.rate_limit_burst < 1):
        return _fail("--rate-limit-burst: must be at least 1, and only with --rate-limit-rps")
    if args.kubeconfig and not args.configmap:
        return _fail("--kubeconfig: only used with --configmap")
    try:
        source = build_source(args)
    except ValueError as exc:
        return _fail(str(exc))
    from mlserving.server.logs import setup_logging

    setup_logging(args.log_level)
    app = RouterApp(source, timeout_s=args.timeout, mirror_queue=args.mirror_queue,
                    max_body_bytes=args.max_body_bytes, connect_timeout_s=args.connect_timeout,
                    max_response_bytes=args.max_response_bytes, mirror_queue_bytes=args.mirror_queue_bytes)
    try:
        tls_files = {}
        if args.tls_dir:
            crt, key = certificate_files(args.tls_dir)
            tls_files = {"ssl_certfile": str(crt), "ssl_keyfile": str(key)}
    except TlsError as exc:
        return _fail(str(exc))
    configure_security(app, args)
    metrics_server = None
    if args.metrics_port:
        from mlserving.server.metrics_port import MetricsPortError, start_metrics_server

        try:
            metrics_server = start_metrics_server(args.host, args.metrics_port, app.metrics.render_with_type,
                                                  "--metrics-port")
        except MetricsPortError as exc:
            return _fail(str(exc))
    try:
        config = uvicorn.Config(app, host=args.host, port=args.port, loop="uvloop", lifespan="on",
                                access_log=False, log_level="warning", log_config=None,  # setup_logging's JSON
                                **UVICORN_SETTINGS, **tls_files)
        config.load()
        if args.tls_dir:
            reloader = CertificateReloader(args.tls_dir, config.ssl, app.metrics)
            app.watches.append((Path(args.tls_dir), reloader.reload, "tls"))
        uvicorn.Server(config).run()
    finally:
        if metrics_server is not None:
            metrics_server.stop()
    return 0
