"""The routing table ConfigMap ``<md>-routing`` (format: docs/api.md, "Routing table")."""

from __future__ import annotations

import json

from mlserving.operator import naming
from mlserving.operator.children.common import Context, metadata


def routing_table(ctx: Context) -> dict:
    spec = ctx.spec
    return {
        "generation": spec.generation,
        "stickyHeader": spec.sticky_header,
        "variants": [
            {"name": v.name, "version": v.version,
             "url": naming.service_url(naming.variant_child(spec.name, v.name), spec.namespace,
                                       ctx.settings.cluster_domain),
             "weight": v.weight, "mirror": v.mirror}
            for v in spec.variants  # spec order: it lays out the sticky buckets
        ],
    }


def configmap(ctx: Context) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ctx, naming.routing_configmap(ctx.spec.name)),
        "data": {naming.ROUTING_KEY: json.dumps(routing_table(ctx), separators=(", ", ": "))},
    }
