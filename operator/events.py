"""Kubernetes Events on ModelDeployments (``kubectl describe md/<name>`` shows them).

Posted directly through the API rather than through kopf's event queue, so they can be written
from any thread (the re-reconcile queue runs outside kopf's handler context). Posting never
raises: an Event that cannot be written is logged and dropped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mlserving.operator.kinds import EVENT
from mlserving.operator.kubeapi import ApiError, KubeApi

log = logging.getLogger("mlserving.operator.events")
COMPONENT = "mlserving-operator"
MAX_MESSAGE = 1024


def post_event(api: KubeApi, obj: dict, type_: str, reason: str, message: str, instance: str = "") -> None:
    meta = obj.get("metadata") or {}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                           "name": meta.get("name"), "namespace": meta.get("namespace"),
                           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        "type": type_, "reason": reason, "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        "reportingInstance": instance or COMPONENT,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    try:
        api.create(EVENT, meta.get("namespace"), body)
    except ApiError as exc:
        log.warning("could not post %s event %s on %s/%s: %s", type_, reason, meta.get("namespace"),
                    meta.get("name"), exc)
