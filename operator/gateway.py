"""Is the Gateway API installed? HTTPRoutes are only emitted when it is.

Detection uses API discovery (``GET /apis/gateway.networking.k8s.io``), which every
authenticated client may read, so the operator needs no permission on CRDs. The answer is
cached for a minute: installing the Gateway API CRDs later is noticed without a restart.
"""

from __future__ import annotations

import threading
import time

from mlserving.operator.kubeapi import ApiError, KubeApi

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
NOT_INSTALLED_REASON = "GatewayAPINotInstalled"
NOT_INSTALLED_MESSAGE = (f"spec.routing.gateway is set but the Gateway API ({GROUP}/{VERSION} HTTPRoute) "
                         "is not installed in the cluster; no HTTPRoute was created")


class GatewayDetector:
    def __init__(self, api: KubeApi, ttl: float = 60.0):
        self.api = api
        self.ttl = ttl
        self._lock = threading.Lock()
        self._answer: bool | None = None
        self._checked_at = 0.0

    def installed(self) -> bool:
        with self._lock:
            if self._answer is not None and time.monotonic() - self._checked_at < self.ttl:
                return self._answer
        try:
            answer = VERSION in self.api.group_versions(GROUP)
        except ApiError:
            if self._answer is not None:  # keep the last answer through a transient error
                return self._answer
            raise
        with self._lock:
            self._answer, self._checked_at = answer, time.monotonic()
        return answer


def is_httproute(child: dict) -> bool:
    return child.get("kind") == "HTTPRoute" and str(child.get("apiVersion", "")).startswith(GROUP + "/")
