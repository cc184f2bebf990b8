"""Topology spread constraints: one Deployment's pods spread over nodes and zones.

Each constraint selects the Deployment's own pods (its selector) and, through ``matchLabelKeys``,
only those of the same ReplicaSet: the API server adds the new pod's ``pod-template-hash`` to the
selector, so during a rollout the new pods are spread among themselves instead of around the
old pods that are about to go.
"""

from __future__ import annotations

from mlserving.operator.spec import SPREAD_HARD, SPREAD_NONE

HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"
POD_TEMPLATE_HASH = "pod-template-hash"  # the ReplicaSet controller sets it on every pod it creates
SOFT = "ScheduleAnyway"
HARD = "DoNotSchedule"


def constraint(topology_key: str, when_unsatisfiable: str, selector: dict[str, str]) -> dict:
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": when_unsatisfiable,
        "labelSelector": {"matchLabels": dict(selector)},
        "matchLabelKeys": [POD_TEMPLATE_HASH],
        # Only nodes the pod may run on are domains. Honouring taints matters for "hard": a
        # cordoned node (tainted unschedulable) or a tainted control-plane node would otherwise
        # count as a domain with zero pods and hold every other node to one pod.
        "nodeAffinityPolicy": "Honor",
        "nodeTaintsPolicy": "Honor",
    }


def topology_spread(mode: str, selector: dict[str, str]) -> list[dict]:
    """The pod template's ``topologySpreadConstraints`` for ``spec.placement.spread``."""
    if mode == SPREAD_NONE:
        return []
    # Zones stay soft in every mode: many clusters (one node, bare metal, kwok) have no zone label.
    return [constraint(HOSTNAME_KEY, HARD if mode == SPREAD_HARD else SOFT, selector),
            constraint(ZONE_KEY, SOFT, selector)]
