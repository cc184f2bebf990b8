"""Prometheus recording rules and alerts for ModelDeployments: their one source.

``monitoring/rules/mlserving.rules.yaml`` is ``render_file()`` with the defaults (hack/render-monitoring.py
writes it; a test checks the committed file is current), and the operator's PrometheusRule of
a ModelDeployment is ``rule_groups()`` restricted to that ModelDeployment with its thresholds.

Series labels assumed, as the PodMonitor and monitoring/prometheus/ attach them: ``namespace``,
``pod``, ``model_deployment`` (the pod's mlserving.io/model-deployment), ``pod_variant`` and
``pod_version`` (its mlserving.io/variant and mlserving.io/model-version; the router's own
``variant``/``version`` labels name the variant a request went to).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

GROUP = "mlserving"
SERVER = ("namespace", "model_deployment", "pod_variant", "model", "version")
ROUTER = ("namespace", "model_deployment", "variant", "version")
# The drift window below which a PSI is not trusted (server/drift.py explains the bias).
MIN_DRIFT_WINDOW_ROWS = 1000
ROUTED = 'variant!="none"'
STATUS_5XX = 'status=~"5.."'
STATUS_ERROR = 'status="error"'
STATUS_SUCCESS = 'status="success"'
HAS_VARIANT = 'pod_variant!=""'


@dataclass(frozen=True)
class RuleParams:
    latency_p95_ms: float = 100.0
    error_ratio: float = 0.01
    drift_psi: float = 0.25
    window: str = "5m"                  # rate() window of every recording rule
    for_latency: str = "10m"
    for_errors: str = "5m"
    for_drift: str = "10m"
    for_router: str = "5m"
    for_pods: str = "5m"
    # PromQL label matchers every selector gets, e.g. 'namespace="team-a",model_deployment="fraud"'.
    matchers: str = ""
    extra_labels: dict = field(default_factory=dict)  # added to every alert


def _by(labels: tuple[str, ...], *more: str) -> str:
    return "(" + ", ".join((*labels, *more)) + ")"


def _sel(p: RuleParams, *matchers: str) -> str:
    parts = [m for m in (p.matchers, *matchers) if m]
    return "{" + ",".join(parts) + "}" if parts else ""


def recording_rules(p: RuleParams) -> list[dict]:
    w = p.window
    by_server, by_router = _by(SERVER), _by(ROUTER)
    predictions = f"rate(model_predictions_total{_sel(p)}[{w}])"
    requests = f"rate(mlserving_router_requests_total{_sel(p, ROUTED)}[{w}])"
    all_requests = f"rate(mlserving_router_requests_total{_sel(p)}[{w}])"
    router_5xx = f"rate(mlserving_router_requests_total{_sel(p, STATUS_5XX)}[{w}])"
    by_router_md = _by(("namespace", "model_deployment"))

    def quantile(q: str, metric: str, labels: tuple[str, ...]) -> str:
        return f"histogram_quantile({q}, sum by {_by(labels, 'le')} (rate({metric}_bucket{_sel(p)}[{w}])))"

    return [
        {"record": "mlserving:model_predictions:rate", "expr": f"sum by {_by(SERVER, 'status')} ({predictions})"},
        {"record": "mlserving:model_prediction_latency_seconds:p95",
         "expr": quantile("0.95", "model_prediction_latency_seconds", SERVER)},
        # Rows answered with a 5xx over all rows; 0 (not empty) while nothing failed: the server
        # exports its error series from the start.
        {"record": "mlserving:model_prediction_errors:ratio",
         "expr": f"sum by {by_server} (rate(model_predictions_total{_sel(p, STATUS_ERROR)}[{w}])) / "
                 f"sum by {by_server} ({predictions})"},
        # What the long-standing `rate(fraud_predictions_total[5m]) / rate(model_predictions_total[5m])`
        # means (that one matches no series: the denominator has a status label the numerator lacks).
        {"record": "mlserving:fraud_predictions:ratio",
         "expr": f"sum by {by_server} (rate(fraud_predictions_total{_sel(p)}[{w}])) / "
                 f"sum by {by_server} (rate(model_predictions_total{_sel(p, STATUS_SUCCESS)}[{w}]))"},
        {"record": "mlserving:router_requests:rate",
         "expr": f"sum by {_by(ROUTER, 'status')} ({all_requests})"},
        # Observed share of primary traffic per variant, in percent: compare with mlserving_router_variant_weight.
        {"record": "mlserving:router_split:percent",
         "expr": f"100 * sum by {by_router} ({requests}) / ignoring(variant, version) group_left "
                 f"sum by {by_router_md} ({requests})"},
        # 5xx answers over all answers; `or ... * 0` gives 0 rather than nothing while no 5xx happened.
        {"record": "mlserving:router_errors:ratio",
         "expr": f"(sum by {by_router} ({router_5xx}) or sum by {by_router} ({all_requests}) * 0) / "
                 f"sum by {by_router} ({all_requests})"},
        *({"record": f"mlserving:router_upstream_latency_seconds:p{q}",
           "expr": quantile(f"0.{q}", "mlserving_router_upstream_latency_seconds", ROUTER)} for q in ("50", "99")),
    ]


def _alert(p: RuleParams, name: str, expr: str, duration: str, severity: str, summary: str,
           description: str, runbook: str) -> dict:
    return {"alert": name, "expr": expr, "for": duration,
            "labels": {"severity": severity, **p.extra_labels},
            "annotations": {"summary": summary, "description": description, "runbook": runbook}}


MD_VARIANT = "{{ $labels.namespace }}/{{ $labels.model_deployment }} variant {{ $labels.pod_variant }}"
MD_ROUTED = "{{ $labels.namespace }}/{{ $labels.model_deployment }} variant {{ $labels.variant }}"
MD_ROUTER = "{{ $labels.namespace }}/{{ $labels.model_deployment }} router"


def alert_rules(p: RuleParams) -> list[dict]:
    seconds = p.latency_p95_ms / 1000
    drift_window = (f"min by {_by(SERVER)} (model_drift_window_rows{_sel(p)}) >= {MIN_DRIFT_WINDOW_ROWS}")
    return [
        _alert(p, "MLServingHighLatencyP95",
               f"mlserving:model_prediction_latency_seconds:p95{_sel(p)} > {seconds:g}", p.for_latency, "warning",
               f"{MD_VARIANT}: p95 latency over {p.latency_p95_ms:g} ms",
               "p95 prediction latency of version {{ $labels.version }} is {{ $value | humanizeDuration }}.",
               "Check CPU throttling and the pods' load; scale the variant or raise its CPU."),
        _alert(p, "MLServingHighErrorRatio",
               f"mlserving:model_prediction_errors:ratio{_sel(p)} > {p.error_ratio:g}", p.for_errors, "critical",
               f"{MD_VARIANT}: more than {p.error_ratio:.2%} of rows answered 5xx",
               "{{ $value | humanizePercentage }} of the rows of version {{ $labels.version }} failed.",
               "Read the server's warning lines (request_id, trace_id, error) for the failing requests."),
        _alert(p, "MLServingRouterErrorRatio",
               f"mlserving:router_errors:ratio{_sel(p)} > {p.error_ratio:g}", p.for_errors, "critical",
               f"{MD_ROUTED}: more than {p.error_ratio:.2%} of routed requests answered 5xx",
               "{{ $value | humanizePercentage }} of the requests the router sent to version "
               "{{ $labels.version }} got a 5xx (unreachable, timeout or the variant's own 5xx).",
               "Check the variant's pods are ready; the router's warning lines name the failure."),
        _alert(p, "MLServingFeatureDrift",
               f"max by {_by(SERVER, 'feature')} (model_feature_drift_psi{_sel(p)}) > {p.drift_psi:g} "
               f"and on {_by(SERVER)} {drift_window}", p.for_drift, "warning",
               f"{MD_VARIANT}: feature {{{{ $labels.feature }}}} drifted (PSI over {p.drift_psi:g})",
               "PSI {{ $value | printf \"%.2f\" }} of feature {{ $labels.feature }} against the training data "
               "of version {{ $labels.version }}, over a window of at least " + str(MIN_DRIFT_WINDOW_ROWS) + " rows.",
               "Compare GET /drift with the training reference; retrain on recent data if the shift is real."),
        _alert(p, "MLServingPredictionDrift",
               f"max by {_by(SERVER)} (model_prediction_drift_psi{_sel(p)}) > {p.drift_psi:g} "
               f"and on {_by(SERVER)} {drift_window}", p.for_drift, "warning",
               f"{MD_VARIANT}: predicted scores drifted (PSI over {p.drift_psi:g})",
               "PSI {{ $value | printf \"%.2f\" }} of the scores of version {{ $labels.version }} against its "
               "held-out scores.",
               "Look for drifting features (MLServingFeatureDrift) and at the fraud rate panel."),
        _alert(p, "MLServingRouterNoValidTable",
               f"max by (namespace, model_deployment, pod) (mlserving_router_table_generation{_sel(p)}) < 0",
               p.for_router, "critical",
               f"{MD_ROUTER} pod {{{{ $labels.pod }}}} has no valid routing table",
               "The router answers 503 to every prediction until a valid table arrives.",
               "Read the router's log for the refused table; check the routing ConfigMap and the operator."),
        _alert(p, "MLServingVariantNoReadyPod",
               f"max by (namespace, model_deployment, pod_variant) (up{_sel(p, HAS_VARIANT)}) == 0",
               p.for_pods, "critical",
               f"{MD_VARIANT}: no pod answers scrapes",
               "Every discovered pod of the variant is down; predictions routed to it fail over or fail.",
               "kubectl describe the variant's pods (image, model fetch, probes)."),
        _alert(p, "MLServingRouterMirrorDrops",
               f"sum by {_by(ROUTER, 'reason')} (rate(mlserving_router_mirror_dropped_total{_sel(p)}[{p.window}])) > 0",
               p.for_router, "info",
               f"{MD_ROUTED}: mirror copies dropped ({{{{ $labels.reason }}}})",
               "{{ $value | humanize }} copies per second to the mirror are not sent; primary traffic is unaffected.",
               "queue_full: the mirror is too slow, raise --mirror-queue or its replicas; unreachable: its pods are down."),
    ]


ALERT_NAMES = tuple(a["alert"] for a in alert_rules(RuleParams()))
RECORDED_NAMES = tuple(r["record"] for r in recording_rules(RuleParams()))


def rule_groups(p: RuleParams | None = None) -> list[dict]:
    p = p or RuleParams()
    return [{"name": f"{GROUP}.rules", "rules": recording_rules(p)},
            {"name": f"{GROUP}.alerts", "rules": alert_rules(p)}]


def render_file(p: RuleParams | None = None) -> str:
    header = ("# Generated from operator/monitoring_rules.py by hack/render-monitoring.py; do not edit.\n"
              "# Alert thresholds and for: durations are parameters of the rendering (RuleParams).\n")
    return header + yaml.safe_dump({"groups": rule_groups(p)}, sort_keys=False, width=1000)
