"""``mlserving operator``: run the ModelDeployment operator (kopf underneath).

Watches all namespaces, or only those given with ``--namespace`` (repeatable). Environment:
MLSERVING_SERVER_IMAGE and the other renderer settings (operator/settings.py),
MLSERVING_LEASE_NAME (mlserving-operator), MLSERVING_LEASE_NAMESPACE (the pod's namespace;
outside a pod the first --namespace, else mlserving-system), MLSERVING_LEASE_DURATION (15 s),
POD_NAME (the replica's identity in the Lease), MLSERVING_RESYNC_SECONDS (300).

The liveness endpoint is served by this module, not by kopf: kopf starts its probe only after
the startup handlers, and a standby replica waits in its startup handler for the Lease, so a
kopf probe would get every standby killed by its kubelet.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                        help="watch only this namespace (repeatable); default: all namespaces")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster credentials, else $KUBECONFIG)")
    parser.add_argument("--liveness", metavar="URL",
                        help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("MLSERVING_METRICS_PORT", "0")),
                        help="serve the rollout metrics on this port at /metrics (env MLSERVING_METRICS_PORT; "
                             "default 0, off; deploy/ runs the operator with 9090)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("MLSERVING_OPERATOR_WORKERS", "8")),
                        help="reconciles running at once (env MLSERVING_OPERATOR_WORKERS, default 8)")
    parser.add_argument("--log-level", default=os.environ.get("MLSERVING_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (env MLSERVING_LOG_LEVEL)")


class _Liveness:
    """200 while the event loop turns and, on the leader, while the Lease is being renewed."""

    def __init__(self, url: str, healthy):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.port:
            raise ValueError(f"--liveness: {url!r} must look like http://<host>:<port>/<path>")
        self.path = parts.path or "/"
        self.healthy = healthy
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if urlsplit(self.path).path != outer.path:
                    self.send_response(404)
                    self.end_headers()
                    return
                ok, why = outer.healthy()
                self.send_response(200 if ok else 500)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write((why + "\n").encode())

            def log_message(self, *args):  # probes every few seconds: keep the log quiet
                pass

        self.server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port), Handler)
        self.server.daemon_threads = True

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, name="liveness", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    level = str(args.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        print(f"mlserving operator: error: --log-level: {args.log_level!r} must be DEBUG, INFO, WARNING or ERROR",
              file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"mlserving operator: error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    import kopf
    from mlserving.operator import handlers
    from mlserving.operator.kubeapi import KubeApi
    from mlserving.operator.leader import LeaseConfig
    from mlserving.operator.settings import OperatorSettings
    from mlserving.server.logs import JsonFormatter

    kopf.configure(log_format=kopf.LogFormat.FULL, verbose=level == "DEBUG", quiet=level in ("WARNING", "ERROR"))
    for handler in logging.getLogger().handlers:  # kopf's handler: the same JSON lines as server and router
        handler.setFormatter(JsonFormatter())
    logging.getLogger("mlserving").setLevel(level)
    if level != "DEBUG":
        # kopf logs one INFO line per handler run, i.e. per child event: reconcile.py logs what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        settings = OperatorSettings.from_env()
        lease = LeaseConfig.from_env(watched=list(args.namespace))
        resync = handlers.resync_seconds_from_env()
        api = KubeApi.from_kubeconfig(args.kubeconfig)
    except Exception as exc:  # noqa: BLE001 (bad environment or kubeconfig: say which and stop)
        print(f"mlserving operator: error: {exc}", file=sys.stderr)
        return 2

    runtime = handlers.Runtime(api=api, settings=settings, lease=lease, namespaces=list(args.namespace),
                               resync_seconds=resync, workers=args.workers)
    handlers.configure(runtime)

    heartbeat = {"at": time.monotonic()}

    def healthy() -> tuple[bool, str]:
        stalled = time.monotonic() - heartbeat["at"]
        if stalled > 30:
            return False, f"event loop stalled for {stalled:.0f}s"
        if not runtime.elector.healthy():
            return False, "leader without a renewed lease"
        return True, "leader" if runtime.elector.is_leader else "standby"

    if args.metrics_port:
        from prometheus_client import start_http_server
        try:
            start_http_server(args.metrics_port, registry=runtime.reconciler.rollout_controller.metrics.registry)
        except OSError as exc:
            print(f"mlserving operator: error: --metrics-port {args.metrics_port}: {exc}", file=sys.stderr)
            return 2

    if args.liveness:
        try:
            _Liveness(args.liveness, healthy).start()
        except (ValueError, OSError) as exc:
            print(f"mlserving operator: error: {exc}", file=sys.stderr)
            return 2

    async def beat() -> None:
        while True:
            heartbeat["at"] = time.monotonic()
            await asyncio.sleep(2)

    async def main() -> None:
        beater = asyncio.create_task(beat())
        try:
            # The identity is passed so kopf never calls getpass.getuser(), which raises in an image
            # whose UID 1000 has no passwd entry.
            await kopf.operator(clusterwide=not args.namespace, namespaces=args.namespace, standalone=True,
                                identity=lease.identity)
        finally:
            beater.cancel()

    logging.getLogger("mlserving.operator").info(
        "mlserving operator %s: %s, lease %s/%s, server image %s", lease.identity,
        "namespaces " + ",".join(args.namespace) if args.namespace else "all namespaces",
        lease.namespace, lease.name, settings.server_image)
    try:
        asyncio.run(main())
    except Exception as exc:
        # kopf wraps a start-up handler's PermanentError (a missing CRD or Lease namespace): its
        # message says what to do, a traceback would only bury it.
        if isinstance(exc.__cause__, kopf.PermanentError):
            print(f"mlserving operator: error: {exc.__cause__}", file=sys.stderr)
            return 1
        raise
    return 0
