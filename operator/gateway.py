"""Is the Gateway API installed? HTTPRoutes are only emitted when it is (and the same question for
the prometheus-operator's monitoring.coreos.com/v1: PodMonitors and PrometheusRules).

Detection uses API discovery (``GET /apis/gateway.networking.k8s.io``), which every
authenticated client may read, so the operator needs no permission on CRDs. The answer is
cached for a minute: installing the Gateway API CRDs later is noticed without a restart.
"""

from __future__ import annotations

import threading

from mlserving.operator.clock import SYSTEM, Clock
from mlserving.operator.kubeapi import ApiError, KubeApi

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
MONITORING_GROUP = "monitoring.coreos.com"
MONITORING_NOT_INSTALLED_MESSAGE = (f"spec.monitoring asks for a PodMonitor or rules but the prometheus-operator "
                                    f"CRDs ({MONITORING_GROUP}/v1) are not installed; none was created "
                                    "(monitoring/prometheus/ scrapes the pods without them)")
NOT_INSTALLED_MESSAGE = (f"spec.routing.gateway is set but the Gateway API ({GROUP}/{VERSION} HTTPRoute) "
                         "is not installed in the cluster; no HTTPRoute was created")


class GatewayDetector:
    """Is ``group``/``version`` served? (The Gateway API by default; the prometheus-operator's too.)"""

    def __init__(self, api: KubeApi, ttl: float = 60.0, clock: Clock = SYSTEM, group: str = GROUP,
                 version: str = VERSION):
        self.api = api
        self.group, self.version = group, version
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._answer: bool | None = None
        self._checked_at = 0.0

    def installed(self) -> bool:
        with self._lock:
            if self._answer is not None and self.clock.monotonic() - self._checked_at < self.ttl:
                return self._answer
        try:
            answer = self.version in self.api.group_versions(self.group)
        except ApiError:
            if self._answer is not None:  # keep the last answer through a transient error
                return self._answer
            raise
        with self._lock:
            self._answer, self._checked_at = answer, self.clock.monotonic()
        return answer

