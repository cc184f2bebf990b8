"""Variant selection: 10,000 buckets laid out over the live variants in table order.

A sticky key's bucket is SHA-256(value), first 8 bytes big-endian, modulo 10,000: a pure function
of the key, identical in every router replica and process (Python's hash() is salted per process,
so it is never used). A request without a key draws its bucket at random, which makes the
probability of each variant exactly weight/100.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right

from mlserving.server.router.table import RoutingTable, Variant

BUCKETS = 10_000


def sticky_bucket(key: bytes) -> int:
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


class Selector:
    """Picks the variant for a request under one routing table."""

    def __init__(self, table: RoutingTable):
        self.table = table
        self.live = table.live
        self.mirrors = table.mirrors
        self.sticky_name = table.sticky_header.encode("latin-1") if table.sticky_header else None
        # Response headers naming each variant, encoded once per table instead of per request.
        self.identity_headers = {v.name: ((b"x-mlserving-variant", v.name.encode()),
                                          (b"x-model-version", v.version.encode())) for v in table.variants}
        self._bounds: list[int] = []  # exclusive upper bucket of each live variant
        upper = 0
        for variant in self.live:
            upper += variant.weight * (BUCKETS // 100)
            self._bounds.append(upper)
        if upper != BUCKETS:
            raise ValueError(f"live weights cover {upper} of {BUCKETS} buckets")
        self._random = random.random

    def for_bucket(self, bucket: int) -> Variant:
        return self.live[bisect_right(self._bounds, bucket)]

    def pick(self, sticky_key: bytes | None = None) -> Variant:
        if sticky_key is not None:
            return self.live[bisect_right(self._bounds, sticky_bucket(sticky_key))]
        return self.live[bisect_right(self._bounds, int(self._random() * BUCKETS))]

    def failover_for(self, failed: Variant) -> Variant | None:
        """Another live variant, drawn by weight among the rest; None when there is no other."""
        others = [v for v in self.live if v.name != failed.name]
        if not others:
            return None
        return random.choices(others, weights=[v.weight for v in others])[0]
