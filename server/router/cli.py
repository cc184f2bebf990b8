"""`mlserving router`: the A/B router process."""

from __future__ import annotations

import argparse
import logging
import sys


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
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per-request upstream timeout; past it the client gets a JSON 504 (default 10)")
    parser.add_argument("--connect-timeout", type=float, default=1.0, metavar="SECONDS",
                        help="opening a connection to a variant; past it the request fails over like a "
                             "refused connection (default 1)")
    parser.add_argument("--mirror-queue", type=int, default=1024, metavar="N",
                        help="mirror copies waiting to be sent before new ones are dropped (default 1024)")
    parser.add_argument("--max-body-bytes", type=int, default=16 << 20, metavar="N",
                        help="largest request body forwarded; larger ones get a JSON 413 (default 16 MiB)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def build_source(args):
    from mlserving.server.router.sources import ConfigMapSource, FileSource

    if args.config:
        return FileSource(args.config)
    namespace, name = ConfigMapSource.parse_ref(args.configmap)
    source = ConfigMapSource(namespace, name, kubeconfig=args.kubeconfig)
    source.load_credentials()
    return source


def _fail(message: str) -> int:
    print(f"mlserving router: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from mlserving.server.router.app import RouterApp

    if args.timeout <= 0:
        return _fail(f"--timeout: must be a positive number of seconds, got {args.timeout:g}")
    if not 0 < args.connect_timeout <= args.timeout:
        return _fail(f"--connect-timeout: must be above 0 and at most --timeout, got {args.connect_timeout:g}")
    if args.mirror_queue < 1:
        return _fail(f"--mirror-queue: must be at least 1, got {args.mirror_queue}")
    if args.max_body_bytes < 1:
        return _fail(f"--max-body-bytes: must be at least 1, got {args.max_body_bytes}")
    if args.kubeconfig and not args.configmap:
        return _fail("--kubeconfig: only used with --configmap")
    try:
        source = build_source(args)
    except ValueError as exc:
        return _fail(str(exc))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = RouterApp(source, timeout_s=args.timeout, mirror_queue=args.mirror_queue,
                    max_body_bytes=args.max_body_bytes, connect_timeout_s=args.connect_timeout)
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_level="warning", timeout_keep_alive=30,
                proxy_headers=False)  # no X-Forwarded-* rewriting: nothing reads the client address
    return 0
