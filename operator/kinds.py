"""Every Kubernetes kind the operator reads or writes: the one table.

kubeapi builds REST paths from it, ``children.child_kinds()`` (what is watched and pruned), the
applier's order and waves come from it, and tests/operator/test_render_manifests.py checks that
deploy/rbac.yaml grants every verb listed here (tests/helm checks the Helm chart renders the same
rules, as ClusterRoles or as Roles per watched namespace). Adding a child kind is one line in
``TABLE`` (and its rule in deploy/rbac.yaml and charts/mlserving/templates/_helpers.tpl, which
those tests ask for).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlserving.operator.spec import API_VERSION, KIND, PLURAL

# What the operator does with a child kind: apply (create/patch), watch by label, prune.
CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the REST API, and what the operator does with it.

    wave: for a child kind, its apply wave: all children of wave 0 are written (in parallel)
        before wave 1 starts, and so on. None: not a child of a ModelDeployment.
    verbs: what the operator's ClusterRole must allow on ``plural``; ``subresources`` the same
        for ``plural/<subresource>``.
    optional: a child kind whose API may not be installed; it is only watched, applied and pruned
        when the cluster serves it.
    """

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    wave: int | None = None
    verbs: tuple[str, ...] = ()
    subresources: tuple[tuple[str, tuple[str, ...]], ...] = ()
    optional: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def base(self) -> str:
        return f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"

    @property
    def is_child(self) -> bool:
        return self.wave is not None


# Child kinds in apply order: dependencies first (the routing ConfigMap and the router's RBAC
# before the router Deployment that reads them; workloads before the HPAs and PDBs that point at
# them). The other kinds follow.
TABLE: tuple[Kind, ...] = (
    # NetworkPolicies first: in place before any pod of the ModelDeployment starts.
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", wave=0, verbs=CHILD_VERBS),
    Kind("v1", "ConfigMap", "configmaps", wave=0, verbs=CHILD_VERBS),
    Kind("v1", "ServiceAccount", "serviceaccounts", wave=0, verbs=CHILD_VERBS),
    Kind("rbac.authorization.k8s.io/v1", "Role", "roles", wave=0, verbs=CHILD_VERBS),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", wave=0, verbs=CHILD_VERBS),
    Kind("v1", "Service", "services", wave=0, verbs=CHILD_VERBS),
    Kind("apps/v1", "Deployment", "deployments", wave=1, verbs=CHILD_VERBS),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", wave=2, verbs=CHILD_VERBS),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", wave=2, verbs=CHILD_VERBS),
    Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", wave=2, verbs=CHILD_VERBS, optional=True),
    Kind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors", wave=2, verbs=CHILD_VERBS, optional=True),
    Kind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules", wave=2, verbs=CHILD_VERBS, optional=True),
    Kind(API_VERSION, KIND, PLURAL, verbs=("get", "list", "watch", "patch"),
         # finalizers: ownerReferences with blockOwnerDeletion=true need update on the owner's.
         subresources=(("status", ("get", "patch", "update")), ("finalizers", ("update",)))),
    Kind("v1", "Event", "events", verbs=("create",)),
    # A rollout's analysis scrapes the router pods; a failed model fetch is read from the server
    # pods' init container statuses.
    Kind("v1", "Pod", "pods", verbs=("list",)),
    # Only read, by name: the Secrets spec.security names (operator/secrets.py); granted by its own
    # ClusterRole mlserving-operator-secrets (docs/security.md).
    Kind("v1", "Secret", "secrets", verbs=("get",)),
    Kind("coordination.k8s.io/v1", "Lease", "leases", verbs=("get", "create", "update")),
    Kind("apps/v1", "ReplicaSet", "replicasets"),  # read by the tests only
)

KINDS = {(k.api_version, k.kind): k for k in TABLE}
_RANK = {k: i for i, k in enumerate(TABLE)}


def kind_of(api_version: str, kind: str) -> Kind:
    try:
        return KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"{api_version} {kind} is not in the operator's kinds table (operator/kinds.py)") from None


def child_kinds() -> list[Kind]:
    """Every kind a ModelDeployment's children can have, in apply order."""
    return [k for k in TABLE if k.is_child]


def kind_of_object(obj: dict) -> Kind:
    return kind_of(obj["apiVersion"], obj["kind"])


def apply_rank(obj: dict) -> int:
    return _RANK[kind_of_object(obj)]


MODEL_DEPLOYMENT = kind_of(API_VERSION, KIND)
DEPLOYMENT = kind_of("apps/v1", "Deployment")
EVENT = kind_of("v1", "Event")
LEASE = kind_of("coordination.k8s.io/v1", "Lease")
POD = kind_of("v1", "Pod")
