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
    --kubeconfig file, or $KUBECONFIG, or ~/.kube/config), through the operator's client layer
    (mlserving.operator.kubeapi). That client is synchronous, so the watch runs in a daemon
    thread and hands each table to the event loop. The router's Role only allows this one
    ConfigMap, so list and watch go by ``fieldSelector=metadata.name=<name>``.
    """

    def __init__(self, namespace: str, name: str, kubeconfig: str | None = None, watch_timeout_s: int = 60):
        self.namespace = namespace
        self.name = name
        self.kubeconfig = kubeconfig
        self.watch_timeout_s = watch_timeout_s
        self._stop = threading.Event()
        self._kube = None

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
        from mlserving.operator.kubeapi import KubeApi
        from mlserving.operator.kubeconfig import ConfigError

        try:
            self._kube = KubeApi.from_kubeconfig(self.kubeconfig, timeout=30.0, pool=2)
        except (ConfigError, OSError, ValueError) as exc:
            raise ValueError(f"--configmap: no usable Kubernetes credentials (not in a pod, and "
                             f"kubeconfig failed: {exc})") from None

    def _api(self):
        if self._kube is None:
            self.load_credentials()
        return self._kube

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

    def _deliver_object(self, obj: dict, hand_over) -> None:
        meta = obj.get("metadata") or {}
        origin = f"configmap {self.namespace}/{self.name} (resourceVersion {meta.get('resourceVersion')})"
        raw = (obj.get("data") or {}).get(CONFIGMAP_KEY)
        if raw is None:
            hand_over(None, origin)  # refused and counted like any invalid table
            return
        hand_over(raw.encode("utf-8"), origin)

    def _watch_forever(self, hand_over) -> None:
        from mlserving.operator.kinds import kind_of
        from mlserving.operator.kubeapi import ApiError

        api = self._api()
        configmap = kind_of("v1", "ConfigMap")
        selector = f"metadata.name={self.name}"
        backoff = 0.5
        while not self._stop.is_set():
            try:
                listing = api.request("GET", api.path(configmap, self.namespace),
                                      query=[("fieldSelector", selector)])
                items = listing.get("items") or []
                if not items:
                    log.warning("configmap %s/%s not found (yet); watching for it", self.namespace, self.name)
                for obj in items:
                    self._deliver_object(obj, hand_over)
                version = (listing.get("metadata") or {}).get("resourceVersion", "")
                while not self._stop.is_set():
                    for kind, obj in api.watch(configmap, self.namespace, resource_version=version,
                                               field_selector=selector, timeout_seconds=self.watch_timeout_s):
                        version = (obj.get("metadata") or {}).get("resourceVersion", version)
                        if kind in ("ADDED", "MODIFIED"):
                            self._deliver_object(obj, hand_over)
                        elif kind == "DELETED":
                            log.warning("configmap %s/%s deleted; the last good table keeps serving",
                                        self.namespace, self.name)
                        if self._stop.is_set():
                            return
                backoff = 0.5
            except ApiError as exc:
                if exc.status == 410:  # resourceVersion too old: list again
                    continue
                log.warning("watching configmap %s/%s failed (HTTP %s): %s; retrying in %.1f s",
                            self.namespace, self.name, exc.status, exc.reason, backoff)
            except Exception as exc:  # noqa: BLE001 - any failure: log, back off, list again
                log.warning("watching configmap %s/%s failed: %s; retrying in %.1f s",
                            self.namespace, self.name, exc, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
