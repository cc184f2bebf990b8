"""Are the Secrets that spec.security names there, with what the router needs in them?

The router mounts them (optional volumes), so a missing Secret does not stop its pods: the router
answers 503 instead of serving unchecked. The operator reads each named Secret (``get`` only, by
name, from the watch cache) to say so in the status; it keeps nothing but the key names and never
logs values. Without ``get`` on Secrets (deploy/rbac.yaml grants it in its own ClusterRole, which
an administrator may drop or narrow to namespaces) the condition says the check was not possible.
"""

from __future__ import annotations

from mlserving.operator.conditions import (
    SECRET_INCOMPLETE,
    SECRET_NOT_FOUND,
    SECRET_UNREADABLE,
    SECRETS_FOUND,
)
from mlserving.operator.kinds import kind_of
from mlserving.operator.kubeapi import ApiError, KubeApi
from mlserving.operator.spec import ModelDeploymentSpec
from mlserving.operator.status import Problem

SECRET = kind_of("v1", "Secret")
TLS_KEYS = ("tls.crt", "tls.key")


def _keys(secret: dict) -> set[str]:
    """Keys with a non-empty value; a key starting with "." is not a token file for the router."""
    data = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    return {k for k, v in data.items() if v and not k.startswith(".")}


def secret_problems(api: KubeApi, spec: ModelDeploymentSpec) -> tuple[list[Problem], list[Problem]]:
    """(problems, blocking): the blocking ones are Secrets known to be missing or unusable, so the
    router refuses requests (Ready must be False and the check repeated until they are right)."""
    problems: list[Problem] = []
    blocking: list[Problem] = []
    sec = spec.security
    for field, name, needed in (("spec.security.auth.secretName", sec.auth_secret, None),
                                ("spec.security.tls.secretName", sec.tls_secret, TLS_KEYS)):
        if name is None:
            continue
        try:
            secret = api.get(SECRET, spec.namespace, name, cached=True)
        except ApiError as exc:
            if exc.status in (401, 403):
                problems.append(Problem(SECRET_UNREADABLE, f"{field}: cannot check Secret {name!r}: the operator "
                                        "may not get Secrets in this namespace (see docs/security.md)",
                                        fatal=False, type=SECRETS_FOUND))
                continue
            raise
        if secret is None:
            blocking.append(Problem(SECRET_NOT_FOUND, f"{field}: Secret {spec.namespace}/{name} not found; the "
                                    "router refuses requests until it exists", fatal=False, type=SECRETS_FOUND))
            problems.append(blocking[-1])
            continue
        keys = _keys(secret)
        lacking = [k for k in needed if k not in keys] if needed else ([] if keys else ["a token"])
        if lacking:
            blocking.append(Problem(SECRET_INCOMPLETE, f"{field}: Secret {spec.namespace}/{name} has no "
                                    f"{', '.join(lacking)}; the router refuses requests until it has",
                                    fatal=False, type=SECRETS_FOUND))
            problems.append(blocking[-1])
    return problems, blocking
