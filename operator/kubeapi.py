"""A thin, dict-in dict-out layer over the Kubernetes REST API.

The operator talks to a handful of kinds and only needs raw JSON, so it calls the API through
the ``kubernetes`` client's connection handling (kubeconfig/in-cluster auth, TLS, pooling) but
skips its model classes: no per-object Python models are built, which keeps memory and CPU low
when hundreds of ModelDeployments are reconciled.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from urllib.parse import quote

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

log = logging.getLogger("mlserving.operator.kubeapi")
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the REST API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def base(self) -> str:
        return f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"


# Every kind the operator reads or writes. Children are looked up here by (apiVersion, kind).
KINDS = {
    (k.api_version, k.kind): k
    for k in (
        Kind("v1", "ConfigMap", "configmaps"),
        Kind("v1", "Service", "services"),
        Kind("v1", "ServiceAccount", "serviceaccounts"),
        Kind("v1", "Event", "events"),
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("apps/v1", "ReplicaSet", "replicasets"),
        Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        Kind("rbac.authorization.k8s.io/v1", "Role", "roles"),
        Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
        Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
        Kind("coordination.k8s.io/v1", "Lease", "leases"),
        Kind("mlserving.io/v1alpha1", "ModelDeployment", "modeldeployments"),
    )
}


def kind_of(api_version: str, kind: str) -> Kind:
    try:
        return KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not know the REST path of {api_version} {kind}") from None


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

    def __init__(self, configuration: k8s_client.Configuration, timeout: float = 30.0):
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 32)
        self._client = k8s_client.ApiClient(configuration)
        self._timeout = timeout

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
    def request(self, method: str, path: str, *, body=None, query: list[tuple[str, str]] | None = None,
                content_type: str = "application/json") -> dict:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            req = self._client.param_serialize(method, path, query_params=query or [],
                                               header_params=headers, body=body,
                                               auth_settings=["BearerToken"])
            resp = self._client.call_api(*req, _request_timeout=self._timeout)
            data = resp.read()
        except k8s_client.ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason or "ApiException"), str(exc.body or "")) from exc
        except Exception as exc:  # urllib3 connection/timeout errors surface here
            raise ApiError(0, type(exc).__name__, str(exc)) from exc
        warning = resp.headers.get("Warning") if resp.headers else None
        if warning:  # deprecations, PodSecurity "warn" findings: worth seeing in the operator log
            log.warning("API warning on %s %s: %s", method, path, warning)
        try:
            payload = json.loads(data) if data else {}
        except ValueError:  # e.g. a plain-text "404 page not found" from discovery
            payload = {"message": data[:300].decode(errors="replace")}
        if not 200 <= resp.status <= 299:
            message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
            reason = payload.get("reason", resp.reason) if isinstance(payload, dict) else resp.reason
            raise ApiError(resp.status, str(reason), message)
        return payload

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


_default: KubeApi | None = None
_default_lock = threading.Lock()


def load_configuration(kubeconfig: str | None = None) -> k8s_client.Configuration:
    """In-cluster credentials inside a pod, else the kubeconfig (``--kubeconfig``, $KUBECONFIG)."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


def default_api(kubeconfig: str | None = None) -> KubeApi:
    """The process-wide client, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = KubeApi(load_configuration(kubeconfig))
        return _default
