"""A variant's Deployment ``<md>-<variant>``: the inference server (``mlserving serve``)."""

from __future__ import annotations

from mlserving.operator import naming
from mlserving.operator.children import fetch
from mlserving.operator.children.common import (
    Context,
    container,
    container_security_context,
    pod_annotations,
    pod_labels,
    pod_spec,
    rolling_deployment,
)
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
        "name": "fetch-model",
        "image": ctx.image,
        "imagePullPolicy": ctx.settings.image_pull_policy,
        "command": fetch.command(storage.uri),
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": fetch.MODEL_DIR}],
    }
    mount = {"name": MODEL_VOLUME, "mountPath": fetch.MODEL_DIR, "readOnly": True}
    return fetch.MODEL_DIR, [volume], [mount], [init]


def variant_deployment(ctx: Context, variant: Variant) -> dict:
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
    template = {
        "metadata": {"labels": pod_labels(ctx, variant.name, variant.version),
                     "annotations": pod_annotations(ctx)},
        "spec": pod_spec(ctx, [server], volumes, service_account=None, init_containers=init),
    }
    replicas = None if ctx.spec.autoscaling is not None else variant.replicas
    return rolling_deployment(ctx, naming.variant_child(ctx.spec.name, variant.name), variant.name,
                              template, replicas)
