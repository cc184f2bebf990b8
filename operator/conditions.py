"""Every condition type and reason the operator writes into a ModelDeployment's status.

This module is their one owner: the operator code and the tests use these constants, and
tests/operator/test_conditions.py checks that the CRD's descriptions and docs/ name exactly
these (a renamed reason fails there, not in a user's ``kubectl wait``). To add one: a constant,
an entry in ``TYPES`` or ``REASONS``, and the row in docs/api.md's condition table.
"""

from __future__ import annotations

# -- condition types ---------------------------------------------------------------------------
READY = "Ready"
CHILDREN_APPLIED = "ChildrenApplied"
HTTPROUTE_READY = "HTTPRouteReady"
MONITORING_READY = "MonitoringReady"
SECRETS_FOUND = "SecretsFound"

TYPES = (READY, CHILDREN_APPLIED, HTTPROUTE_READY, MONITORING_READY, SECRETS_FOUND)

# -- reasons -----------------------------------------------------------------------------------
ALL_REPLICAS_READY = "AllReplicasReady"
CHILDREN_NOT_CREATED = "ChildrenNotCreated"
ROLLOUT_IN_PROGRESS = "RolloutInProgress"
ROLLOUT_FAILED = "RolloutFailed"
REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
INVALID_SPEC = "InvalidSpec"
RENDER_ERROR = "RenderError"
OWNERSHIP_CONFLICT = "OwnershipConflict"
APPLY_REJECTED = "ApplyRejected"
APPLY_INCOMPLETE = "ApplyIncomplete"
WAITING_FOR_PREDECESSOR = "WaitingForPredecessor"
GATEWAY_API_MISSING = "GatewayAPIMissing"
PROMETHEUS_OPERATOR_MISSING = "PrometheusOperatorMissing"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_INCOMPLETE = "SecretIncomplete"
SECRET_UNREADABLE = "SecretUnreadable"
MODEL_FETCH_FAILED = "ModelFetchFailed"

# reason -> the condition types that carry it (docs/api.md says what each means)
REASONS = {
    ALL_REPLICAS_READY: (READY,),
    CHILDREN_NOT_CREATED: (READY,),
    ROLLOUT_IN_PROGRESS: (READY,),
    ROLLOUT_FAILED: (READY,),
    REPLICAS_UNAVAILABLE: (READY,),
    INVALID_SPEC: (READY,),
    RENDER_ERROR: (READY,),
    OWNERSHIP_CONFLICT: (READY,),
    APPLY_REJECTED: (READY,),
    APPLY_INCOMPLETE: (READY, CHILDREN_APPLIED),
    WAITING_FOR_PREDECESSOR: (READY, CHILDREN_APPLIED),
    GATEWAY_API_MISSING: (HTTPROUTE_READY,),
    PROMETHEUS_OPERATOR_MISSING: (MONITORING_READY,),
    SECRET_NOT_FOUND: (READY, SECRETS_FOUND),
    SECRET_INCOMPLETE: (READY, SECRETS_FOUND),
    SECRET_UNREADABLE: (SECRETS_FOUND,),
    MODEL_FETCH_FAILED: (READY,),
}

# Reasons of the Events posted besides the conditions' own reasons.
EVENT_READY = "Ready"
EVENT_NOT_READY = "NotReady"

# Events of a rollout (status.rollout; docs/api.md, "Status and control"). Normal unless noted.
EVENT_ROLLOUT_STARTED = "RolloutStarted"
EVENT_ROLLOUT_STEP = "RolloutStep"
EVENT_ROLLOUT_PROMOTED = "RolloutPromoted"
EVENT_ROLLOUT_ROLLED_BACK = "RolloutRolledBack"  # Warning
EVENT_ROLLOUT_PAUSED = "RolloutPaused"
EVENT_ROLLOUT_RESUMED = "RolloutResumed"
EVENT_ROLLOUT_COMMAND_IGNORED = "RolloutCommandIgnored"
EVENT_ROLLOUT_COMMAND_UNKNOWN = "RolloutCommandUnknown"  # Warning
