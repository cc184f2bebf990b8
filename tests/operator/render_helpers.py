"""Builders of ModelDeployment dicts for the renderer tests (no cluster involved)."""

from __future__ import annotations

import copy

from mlserving.operator.children import desired_children
from mlserving.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(server_image="registry.example/mlserving/server:9.9.9")


def make_md(variants=None, name="fraud", namespace="team-a", generation=3, **spec) -> dict:
    if variants is None:
        variants = [{"name": "stable", "version": "1.0.0", "weight": 90},
                    {"name": "candidate", "version": "2.0.0", "weight": 10}]
    return {
        "apiVersion": "mlserving.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace, "uid": "0b7c5c3e-uid", "generation": generation},
        "spec": {"model": "fraud", "variants": copy.deepcopy(variants), **copy.deepcopy(spec)},
    }


def single(**spec) -> dict:
    return make_md([{"name": "stable", "version": "1.0.0", "weight": 100}], **spec)


def render(md: dict, settings: OperatorSettings = SETTINGS) -> dict[tuple[str, str], dict]:
    """(kind, name) -> manifest."""
    out = {}
    for child in desired_children(md, settings):
        key = (child["kind"], child["metadata"]["name"])
        assert key not in out, f"duplicate child {key}"
        out[key] = child
    return out


def deployments(children: dict) -> dict[str, dict]:
    return {name: c for (kind, name), c in children.items() if kind == "Deployment"}
