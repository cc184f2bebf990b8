"""What a variant's Deployment serves, remembered in an annotation on it (docs/api.md, "Rollouts").

The served spec (version, storageUri, replicas, resources) is what a rollout starts from and what
the variant's Deployment keeps being rendered with while a new version is on trial.
"""

from __future__ import annotations

import hashlib
import json

from mlserving.operator.spec import SpecError, Variant, parse_storage

SERVED_ANNOTATION = "mlserving.io/served-variant"


def served_of(variant: Variant) -> dict:
    return {"version": variant.version, "storageUri": variant.storage.uri, "replicas": variant.replicas,
            "resources": variant.resources}


def variant_from(served: dict, like: Variant) -> Variant:
    """``like`` (the spec's variant: name, weight, mirror) serving ``served`` instead."""
    try:
        storage = parse_storage(served["storageUri"], f"status.rollout.served of {like.name}")
        return Variant(like.name, served["version"], like.weight, like.mirror, storage,
                       int(served.get("replicas", like.replicas)), served.get("resources"))
    except (KeyError, TypeError, ValueError, SpecError):
        return like


def read_served(deployment: dict | None) -> dict | None:
    raw = ((deployment or {}).get("metadata") or {}).get("annotations", {}).get(SERVED_ANNOTATION)
    if not raw:
        return None
    try:
        served = json.loads(raw)
    except ValueError:
        return None
    return served if isinstance(served, dict) and isinstance(served.get("version"), str) else None


def annotation(variant: Variant) -> dict:
    return {SERVED_ANNOTATION: json.dumps(served_of(variant), sort_keys=True, separators=(",", ":"))}


def track_hash(served: dict) -> str:
    return hashlib.sha256(f"{served['version']}\n{served['storageUri']}".encode()).hexdigest()[:5]
