"""Where routing tables come from: a file, or a ConfigMap watched through the Kubernetes API.

A source calls ``deliver(raw_bytes, origin)`` for every new version of the table it sees (raw is
None when the ConfigMap lacks the key); validation and the switch happen in RouterApp.apply_table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("mlserving.router")

Deliver = Callable[[bytes | None, str], object]
CONFIGMAP_KEY = "routing.json"


class FileSource:
    """Polls a file's identity (inode, size, mtime); re-reads it when any of them changes.

    Polling (every 0.5 s by default) works for plain edits, atomic renames and the symlink swaps
    kubelet uses for mounted ConfigMaps alike, with nothing beyond the standard library.
    """

    def __init__(self, path: str, interval_s: float = 0.5):
        self.path = path
        self.interval_s = interval_s

    def describe(self) -> str:
        return f"file {self.path}"

    def _identity(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    async def run(self, deliver: Deliver) -> None:
        seen = object()
        missing_logged = False
        while True:
            identity = self._identity()
            if identity is None:
                if not missing_logged:
                    log.warning("routing table file %s does not exist (yet); waiting for it", self.path)
                    missing_logged = True
            elif identity != seen:
                missing_logged = False
                try:
                    with open(self.path, "rb") as fh:  # noqa: ASYNC230 - a few KiB, local disk
                        raw = fh.read()
                except OSError as exc:
                    log.warning("cannot read routing table file %s: %s", self.path, exc)
                else:
                    seen = identity
                    deliver(raw, f"file {self.path}")
            await asyncio.sleep(self.interval_s)


class ConfigMapSource:
    """Lists, then watches one ConfigMap through the API server and delivers its key routing.json.

    Credentials: in-cluster service account when running in a pod, else the kubeconfig (the
    --kubeconfig file, or $KUBECONFIG, or ~/.kube/config). The kubernetes client is synchronous,
    so the watch runs in a daemon thread and hands each table to the event loop.
    """

    def __init__(self, namespace: str, name: str, kubeconfig: str | None = None, watch_timeout_s: int = 60):
        self.namespace = namespace
        self.name = name
        self.kubeconfig = kubeconfig
        self.watch_timeout_s = watch_timeout_s
        self._stop = threading.Event()
        self._core_api = None

    def describe(self) -> str:
        return f"configmap {self.namespace}/{self.name}"

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, str]:
        namespace, sep, name = ref.partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise ValueError(f"--configmap: expected NAMESPACE/NAME, got {ref!r}")
        return namespace, name

    def load_credentials(self) -> None:
        """Load the API credentials now (no network), so a router without any fails at start."""
        from kubernetes import client, config

        try:
            if self.kubeconfig:
                config.load_kube_config(config_file=self.kubeconfig)
            else:
                try:
                    config.load_incluster_config()
                except config.ConfigException:
                    config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise ValueError(f"--configmap: no usable Kubernetes credentials (not in a pod, and "
                             f"kubeconfig failed: {exc})") from None
        self._core_api = client.CoreV1Api()

    def _api(self):
        if self._core_api is None:
            self.load_credentials()
        return self._core_api

    async def run(self, deliver: Deliver) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def hand_over(raw: bytes | None, origin: str) -> None:
            loop.call_soon_threadsafe(deliver, raw, origin)

        def _settle(exc: BaseException | None) -> None:
            if not done.done():
                done.set_result(None) if exc is None else done.set_exception(exc)

        def thread_main() -> None:
            try:
                self._watch_forever(hand_over)
            except BaseException as exc:  # noqa: BLE001 - surfaced to the awaiting task (bad credentials)
                loop.call_soon_threadsafe(_settle, exc)
            else:
                loop.call_soon_threadsafe(_settle, None)

        threading.Thread(target=thread_main, name="configmap-watch", daemon=True).start()
        try:
            await done
        finally:
            self._stop.set()

    def _deliver_object(self, obj, hand_over) -> None:
        data = obj.data or {}
        origin = f"configmap {self.namespace}/{self.name} (resourceVersion {obj.metadata.resource_version})"
        raw = data.get(CONFIGMAP_KEY)
        if raw is None:
            hand_over(None, origin)  # refused and counted like any invalid table
            return
        hand_over(raw.encode("utf-8"), origin)

    def _watch_forever(self, hand_over) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        selector = f"metadata.name={self.name}"
        backoff = 0.5
        while not self._stop.is_set():
            try:
                listing = api.list_namespaced_config_map(self.namespace, field_selector=selector,
                                                         _request_timeout=30)
                if not listing.items:
                    log.warning("configmap %s/%s not found (yet); watching for it", self.namespace, self.name)
                for obj in listing.items:
                    self._deliver_object(obj, hand_over)
                version = listing.metadata.resource_version
                while not self._stop.is_set():
                    stream = watch.Watch().stream(api.list_namespaced_config_map, self.namespace,
                                                  field_selector=selector, resource_version=version,
                                                  timeout_seconds=self.watch_timeout_s,
                                                  _request_timeout=self.watch_timeout_s + 15)
                    for event in stream:
                        obj = event["object"]
                        version = obj.metadata.resource_version
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self._deliver_object(obj, hand_over)
                        elif event["type"] == "DELETED":
                            log.warning("configmap %s/%s deleted; the last good table keeps serving",
                                        self.namespace, self.name)
                        if self._stop.is_set():
                            return
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:  # resourceVersion too old: list again
                    continue
                log.warning("watching configmap %s/%s failed (HTTP %s): %s; retrying in %.1f s",
                            self.namespace, self.name, exc.status, exc.reason, backoff)
            except Exception as exc:  # noqa: BLE001 - any failure: log, back off, list again
                log.warning("watching configmap %s/%s failed: %s; retrying in %.1f s",
                            self.namespace, self.name, exc, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
