"""A variant's Deployment ``<md>-<variant>``: the inference server (``mlserving serve``)."""

from __future__ import annotations

from mlserving.operator import naming
from mlserving.operator.children import fetch
from mlserving.operator.children.common import (
    Context,
    container,
    container_security_context,
    metadata,
    pod_annotations,
    pod_labels,
    pod_spec,
    rolling_deployment,
)
from mlserving.operator.children.pdb import variant_min_replicas
from mlserving.operator.rollout.served import annotation as served_annotation
from mlserving.operator.spec import Variant

MODEL_VOLUME = "model"


def variant_resources(ctx: Context, variant: Variant) -> dict:
    """spec.resources with the variant's requests and/or limits replacing those sections."""
    out = {k: dict(v) for k, v in ctx.spec.resources.items()}
    for key, section in (variant.resources or {}).items():
        out[key] = dict(section)
    return out


def model_source(ctx: Context, variant: Variant) -> tuple[str, list[dict], list[dict], list[dict]]:
    """(MODEL_PATH, volumes, server volumeMounts, initContainers) for the variant's storageUri."""
    storage = variant.storage
    if storage.kind == "image":
        return storage.path, [], [], []
    if storage.kind == "pvc":
        volume = {"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": storage.claim, "readOnly": True}}
        mount = {"name": MODEL_VOLUME, "mountPath": fetch.MODEL_DIR, "readOnly": True}
        path = f"{fetch.MODEL_DIR}/{storage.path}" if storage.path else fetch.MODEL_DIR
        return path, [volume], [mount], []
    volume = {"name": MODEL_VOLUME, "emptyDir": {"sizeLimit": "2Gi"}}
    init = {
        "name": fetch.CONTAINER_NAME,
        "image": ctx.image,
        "imagePullPolicy": ctx.settings.image_pull_policy,
        "command": fetch.command(storage.uri),
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": fetch.MODEL_DIR}],
        # The error line of a failed fetch becomes the container's termination message, which the
        # operator reads from the pod's status into the ModelDeployment's (no pods/log access).
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if storage.kind == "s3":
        init["env"] = fetch.s3_env(ctx.spec.s3)
    mount = {"name": MODEL_VOLUME, "mountPath": fetch.MODEL_DIR, "readOnly": True}
    return fetch.MODEL_DIR, [volume], [mount], [init]


def server_pod(ctx: Context, variant: Variant, labels: dict) -> dict:
    # Nothing about weights may appear in here: a weight-only change must leave the pod template
    # identical (the router reads weights from the routing ConfigMap).
    model_path, volumes, mounts, init = model_source(ctx, variant)
    env = [
        {"name": "MODEL_PATH", "value": model_path},
        {"name": "MODEL_NAME", "value": ctx.spec.model},
        {"name": "PORT", "value": str(naming.HTTP_PORT)},
        {"name": "LOG_LEVEL", "value": ctx.settings.log_level},
    ]
    server = container(ctx, "server", ["serve"], env, variant_resources(ctx, variant), mounts)
    return {
        "metadata": {"labels": labels, "annotations": pod_annotations(ctx)},
        "spec": pod_spec(ctx, [server], volumes, service_account=None, init_containers=init),
    }


def variant_deployment(ctx: Context, variant: Variant) -> dict:
    """``variant`` as it should serve now (during a rollout: the old version, rollout.plan)."""
    template = server_pod(ctx, variant, pod_labels(ctx, variant.name, variant.version))
    replicas = None if ctx.spec.autoscaling is not None else variant.replicas
    name = naming.variant_child(ctx.spec.name, variant.name)
    # What it serves, remembered for the next rollout (metadata only: no pod restarts).
    meta = metadata(ctx, name, variant.name, served_annotation(variant))
    return rolling_deployment(ctx, name, variant.name, template, replicas, meta=meta)


def track_deployment(ctx: Context, track) -> dict:
    """A rollout's new version ``<md>-<variant>-<hash>`` (track: rollout.plan.Track)."""
    md = ctx.spec.name
    labels = naming.track_labels(md, track.name, track.variant)
    pod = {**ctx.spec.pod_overrides.labels, **labels, naming.LABEL_MODEL_VERSION: track.target.version}
    template = server_pod(ctx, track.target, pod)
    meta = metadata(ctx, track.name)
    meta["labels"] = dict(labels)
    # Its own replica count (no HPA): the variant's, or its HPA minimum with autoscaling.
    return rolling_deployment(ctx, track.name, None, template, variant_min_replicas(ctx, track.target),
                              selector=naming.track_selector(md, track.name), meta=meta)
