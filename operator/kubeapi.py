"""A thin, dict-in dict-out layer over the Kubernetes REST API: the one client of operator and router.

The operator and the router talk to a handful of kinds and only need raw JSON, so this calls the
REST API with httpx (connection pooling, HTTP keep-alive, TLS) and the credentials of
operator/kubeconfig.py; no per-object Python models are built, which keeps memory and CPU low
when hundreds of ModelDeployments are reconciled, and keeps the ``kubernetes`` package (about
130 MB installed, see docs/operator-internals.md) out of the images.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import httpx
from mlserving.operator import kubeconfig
from mlserving.operator.kinds import Kind, kind_of

log = logging.getLogger("mlserving.operator.kubeapi")
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server (status 0: the server could not be reached)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        # 409 on a write is an optimistic-concurrency conflict; 429/5xx and connection errors pass.
        return self.status in (0, 409, 429) or self.status >= 500


class KubeApi:
    """Synchronous, thread-safe access to the API server with JSON dicts."""

    def __init__(self, credentials: kubeconfig.Credentials, timeout: float = 30.0, pool: int = 32):
        # httpx logs every request at INFO; the operator sends hundreds a minute and logs what matters.
        if logging.getLogger("httpx").getEffectiveLevel() < logging.WARNING:
            logging.getLogger("httpx").setLevel(logging.WARNING)
        self.credentials = credentials
        self._timeout = timeout
        self._client = httpx.Client(base_url=credentials.server, verify=credentials.ssl_context(),
                                    timeout=httpx.Timeout(timeout, connect=10.0),
                                    limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
                                    trust_env=False)

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, **kwargs) -> KubeApi:
        """In-cluster credentials inside a pod, else the kubeconfig (``path``, $KUBECONFIG, ~/.kube/config)."""
        return cls(kubeconfig.load(path), **kwargs)

    def close(self) -> None:
        self._client.close()

    # -- paths -------------------------------------------------------------------------------
    @staticmethod
    def path(kind: Kind, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        parts = [kind.base]
        if kind.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace)}")
        parts.append(kind.plural)
        if name:
            parts.append(quote(name))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)

    # -- raw request -------------------------------------------------------------------------
    def _headers(self, content_type: str, refresh: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        authorization = self.credentials.authorization(refresh)
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def _send(self, method: str, path: str, body, query, content_type: str, stream: bool = False,
              timeout: float | None = None) -> httpx.Response:
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for attempt in (0, 1):
            try:
                extra = {"timeout": httpx.Timeout(timeout, connect=10.0)} if timeout else {}
                request = self._client.build_request(
                    method, path, params=query or None, content=content,
                    headers=self._headers(content_type, refresh=attempt == 1), **extra)
                resp = self._client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise ApiError(0, type(exc).__name__, str(exc) or repr(exc)) from exc
            except kubeconfig.ConfigError as exc:
                raise ApiError(0, "Credentials", str(exc)) from exc
            # An expired token (rotated service account token, exec plugin): fetch it again once.
            if resp.status_code == 401 and attempt == 0 and (self.credentials.token_file
                                                             or self.credentials.exec_config):
                resp.close()
                continue
            break
        warning = resp.headers.get("Warning")
        if warning:  # deprecations, PodSecurity "warn" findings: worth seeing in the operator log
            log.warning("API warning on %s %s: %s", method, path, warning)
        return resp

    @staticmethod
    def _error(resp: httpx.Response, data: bytes) -> ApiError:
        try:
            payload = json.loads(data) if data else {}
        except ValueError:  # e.g. a plain-text "404 page not found" from discovery
            payload = {"message": data[:300].decode(errors="replace")}
        if not isinstance(payload, dict):
            payload = {"message": str(payload)}
        return ApiError(resp.status_code, str(payload.get("reason") or resp.reason_phrase), payload.get("message", ""))

    def request(self, method: str, path: str, *, body=None, query: list[tuple[str, str]] | None = None,
                content_type: str = "application/json") -> dict:
        resp = self._send(method, path, body, query, content_type)
        data = resp.content
        if not 200 <= resp.status_code <= 299:
            raise self._error(resp, data)
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise ApiError(resp.status_code, "BadResponse", data[:300].decode(errors="replace")) from None

    def watch(self, kind: Kind, namespace: str | None, *, resource_version: str,
              field_selector: str | None = None, label_selector: str | None = None,
              timeout_seconds: int = 60) -> Iterator[tuple[str, dict]]:
        """(type, object) for each change after ``resource_version`` until the server ends the watch
        (after ``timeout_seconds``). A 410 (the version is too old: list again) raises ApiError."""
        query = [("watch", "1"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if label_selector:
            query.append(("labelSelector", label_selector))
        resp = self._send("GET", self.path(kind, namespace), None, query, "application/json", stream=True,
                          timeout=timeout_seconds + 15)
        try:
            if not 200 <= resp.status_code <= 299:
                raise self._error(resp, resp.read())
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or "Error"),
                                   str(obj.get("message") or ""))
                yield event.get("type", ""), obj
        except httpx.HTTPError as exc:
            raise ApiError(0, type(exc).__name__, str(exc) or repr(exc)) from exc
        finally:
            resp.close()

    # -- verbs -------------------------------------------------------------------------------
    def get(self, kind: Kind, namespace: str | None, name: str, cached: bool = False) -> dict | None:
        """``cached``: served from the API server's watch cache (resourceVersion=0), which costs it
        no etcd read but may be a moment behind."""
        try:
            return self.request("GET", self.path(kind, namespace, name),
                                query=[("resourceVersion", "0")] if cached else None)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: Kind, namespace: str | None, label_selector: str | None = None,
             cached: bool = False) -> list[dict]:
        query = [("labelSelector", label_selector)] if label_selector else []
        if cached:
            query.append(("resourceVersion", "0"))
        return self.request("GET", self.path(kind, namespace), query=query).get("items") or []

    def apply(self, obj: dict, field_manager: str, force: bool = True,
              subresource: str | None = None) -> dict:
        kind = kind_of(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        return self.request("PATCH", self.path(kind, meta.get("namespace"), meta["name"], subresource),
                            body=obj, query=query, content_type=APPLY_PATCH)

    def merge_patch(self, kind: Kind, namespace: str | None, name: str, patch: dict,
                    subresource: str | None = None, field_manager: str | None = None) -> dict:
        query = [("fieldManager", field_manager)] if field_manager else []
        return self.request("PATCH", self.path(kind, namespace, name, subresource), body=patch,
                            query=query, content_type=MERGE_PATCH)

    def create(self, kind: Kind, namespace: str | None, obj: dict,
               field_manager: str | None = None) -> dict:
        query = [("fieldManager", field_manager)] if field_manager else []
        return self.request("POST", self.path(kind, namespace), body=obj, query=query)

    def replace(self, kind: Kind, namespace: str | None, name: str, obj: dict,
                field_manager: str | None = None) -> dict:
        query = [("fieldManager", field_manager)] if field_manager else []
        return self.request("PUT", self.path(kind, namespace, name), body=obj, query=query)

    def delete(self, kind: Kind, namespace: str | None, name: str, uid: str | None = None) -> bool:
        """Delete in the background; with ``uid`` only that very object (precondition)."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", self.path(kind, namespace, name), body=body)
            return True
        except ApiError as exc:
            if exc.status in (404, 409):  # gone already, or a newer object took the name
                return False
            raise

    def group_versions(self, group: str) -> list[str]:
        """The served versions of an API group, [] when the group is not installed."""
        try:
            payload = self.request("GET", f"/apis/{group}")
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return [v.get("version", "") for v in payload.get("versions") or []]
