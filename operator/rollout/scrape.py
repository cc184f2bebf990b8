"""Reading every ready router pod's own /metrics (port named ``metrics``, else ``http``)."""

from __future__ import annotations

import logging
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from mlserving.operator import naming
from mlserving.operator.kinds import KINDS
from mlserving.operator.kubeapi import KubeApi
from mlserving.operator.rollout.analysis import Series, parse_metrics

log = logging.getLogger("mlserving.operator.rollout")
POD = KINDS[("v1", "Pod")]
SCRAPE_TIMEOUT_S = 3.0
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="scrape")


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def metrics_url(pod: dict) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    ports = {p.get("name"): p.get("containerPort") for c in (pod.get("spec") or {}).get("containers") or []
             for p in c.get("ports") or []}
    port = ports.get("metrics") or ports.get("http") or naming.HTTP_PORT
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/metrics"


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as resp:
        return resp.read().decode()


def scrape_routers(api: KubeApi, namespace: str, md: str) -> dict[str, Series]:
    """pod name -> its series; a pod that does not answer is left out (its counters resume later)."""
    selector = f"{naming.LABEL_INSTANCE}={md},{naming.LABEL_VARIANT}={naming.ROUTER}"
    pods = [p for p in api.list(POD, namespace, selector) if _ready(p) and metrics_url(p)]

    def one(pod: dict) -> tuple[str, Series | None]:
        url = metrics_url(pod)
        try:
            return pod["metadata"]["name"], parse_metrics(_fetch(url))
        except (OSError, ValueError) as exc:
            log.warning("%s/%s: router pod %s: scraping %s failed: %s", namespace, md, pod["metadata"]["name"],
                        url, exc)
            return pod["metadata"]["name"], None
    return {name: series for name, series in _pool.map(one, pods) if series is not None}
