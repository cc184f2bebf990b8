"""PodMonitor and PrometheusRule of a ModelDeployment (prometheus-operator, monitoring.coreos.com/v1).

The PodMonitor scrapes the metrics port of every server and router pod and copies the pods'
variant and version labels onto the series as ``pod_variant`` and ``pod_version`` (the router's
own series already have ``variant`` and ``version``: the variant a request went to). The
PrometheusRule is operator/monitoring_rules.py, the source of monitoring/rules/ too, restricted to
this ModelDeployment's series and with its thresholds.
"""

from __future__ import annotations

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata
from mlserving.operator.monitoring_rules import RuleParams, rule_groups

API_VERSION = "monitoring.coreos.com/v1"
GROUP = "monitoring.coreos.com"
METRICS_PORT_NAME = "metrics"


def _label(pod_label: str) -> str:
    """The relabeling source name of a pod label (every non-alphanumeric character becomes _)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in pod_label)


POD_LABELS = {  # series label <- pod label
    "model_deployment": naming.LABEL_MODEL_DEPLOYMENT,
    "pod_variant": naming.LABEL_VARIANT,
    "pod_version": naming.LABEL_MODEL_VERSION,
}


def pod_monitor(ctx: Context) -> dict:
    md = ctx.spec.name
    return {
        "apiVersion": API_VERSION, "kind": "PodMonitor", "metadata": metadata(ctx, md),
        "spec": {
            "selector": {"matchLabels": {naming.LABEL_INSTANCE: md, naming.LABEL_MANAGED_BY: naming.MANAGED_BY}},
            "podMetricsEndpoints": [{
                "port": METRICS_PORT_NAME, "path": "/metrics", "interval": "15s",
                "relabelings": [{"sourceLabels": [_label(pod_label)], "targetLabel": target, "action": "replace"}
                                for target, pod_label in POD_LABELS.items()],
            }],
        },
    }


def rule_params(ctx: Context) -> RuleParams:
    m = ctx.spec.monitoring
    return RuleParams(latency_p95_ms=m.latency_p95_ms, error_ratio=m.error_ratio, drift_psi=m.drift_psi,
                      matchers=f'namespace="{ctx.spec.namespace}",model_deployment="{ctx.spec.name}"')


def prometheus_rule(ctx: Context) -> dict:
    return {"apiVersion": API_VERSION, "kind": "PrometheusRule", "metadata": metadata(ctx, ctx.spec.name),
            "spec": {"groups": rule_groups(rule_params(ctx))}}


def children(ctx: Context) -> list[dict]:
    m = ctx.spec.monitoring
    return [*([pod_monitor(ctx)] if m.pod_monitor else []), *([prometheus_rule(ctx)] if m.rules else [])]
