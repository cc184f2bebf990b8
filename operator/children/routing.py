"""The routing table ConfigMap ``<md>-routing`` (format: docs/api.md, "Routing table")."""

from __future__ import annotations

import json

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata


def routing_table(ctx: Context) -> dict:
    spec = ctx.spec
    plan = ctx.plan
    track = plan.track if plan is not None and plan.track is not None and plan.track.in_table else None

    def url(service: str) -> str:
        return naming.service_url(service, spec.namespace, ctx.settings.cluster_domain)

    variants = []
    for v in spec.variants:  # spec order: it lays out the sticky buckets
        version = plan.rendered[v.name].version if plan is not None else v.version
        entry = {"name": v.name, "version": version, "url": url(naming.variant_child(spec.name, v.name)),
                 "weight": v.weight, "mirror": v.mirror}
        if track is not None and track.variant == v.name:
            # With a track the variant's own entry is the old version's: the first track.
            entry["version"] = track.from_version
            new = {"version": track.target.version, "url": url(track.name)}
            entry["tracks"] = [{"version": track.from_version, "url": entry["url"], "weight": 100 - track.weight},
                               {**new, "weight": 0, "shadow": True} if track.shadow else
                               {**new, "weight": track.weight}]
        variants.append(entry)
    table = {"generation": spec.generation, "stickyHeader": spec.sticky_header, "variants": variants}
    if track is not None:
        table = {"format": 2, **table}  # only while tracks exist: routers of any release read format 1
    return table


def configmap(ctx: Context) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ctx, naming.routing_configmap(ctx.spec.name)),
        "data": {naming.ROUTING_KEY: json.dumps(routing_table(ctx), separators=(", ", ": "))},
    }
