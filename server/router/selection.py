"""Variant selection: 10,000 buckets laid out over the live variants in table order.

A sticky key's bucket is SHA-256(value), first 8 bytes big-endian, modulo 10,000: a pure function
of the key, identical in every router replica and process (Python's hash() is salted per process,
so it is never used). A request without a key draws its bucket at random, which makes the
probability of each variant exactly weight/100.

A variant split into tracks (a rollout) lays its own buckets out over its tracks in track order,
old version first: as the new version's weight grows, a sticky key only moves from old to new.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from dataclasses import dataclass

from mlserving.server.router.table import RoutingTable, Variant
from mlserving.server.whole_response import head_lines

BUCKETS = 10_000


def sticky_bucket(key: bytes) -> int:
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Route:
    """Where one bucket range goes: a variant, or one track of a variant split by a rollout."""

    name: str  # the variant's name
    version: str
    url: str
    buckets: int
    identity: bytes  # header lines naming variant and version, encoded once per table
    shadows: tuple = ()  # Routes of the variant's shadow tracks: compared copies of its requests


def _identity(name: str, version: str) -> bytes:
    return head_lines(((b"x-mlserving-variant", name.encode()), (b"x-model-version", version.encode())))


def routes_of(variant: Variant) -> list[Route]:
    span = variant.weight * (BUCKETS // 100)
    if not variant.tracks:
        return [Route(variant.name, variant.version, variant.url, span, _identity(variant.name, variant.version))]
    shadows = tuple(Route(variant.name, t.version, t.url, 0, _identity(variant.name, t.version))
                    for t in variant.tracks if t.shadow)
    return [Route(variant.name, t.version, t.url, span * t.weight // 100, _identity(variant.name, t.version),
                  shadows) for t in variant.tracks if not t.shadow and t.weight > 0]


class Selector:
    """Picks the route (variant, and track during a rollout) for a request under one routing table."""

    def __init__(self, table: RoutingTable):
        self.table = table
        self.live = table.live
        self.mirrors = table.mirrors
        self.sticky_name = table.sticky_header.encode("latin-1") if table.sticky_header else None
        self.routes: list[Route] = [r for v in self.live for r in routes_of(v)]
        self._bounds: list[int] = []  # exclusive upper bucket of each route
        upper = 0
        for route in self.routes:
            upper += route.buckets
            self._bounds.append(upper)
        if upper != BUCKETS:
            raise ValueError(f"live weights cover {upper} of {BUCKETS} buckets")
        self._random = random.random

    def for_bucket(self, bucket: int) -> Route:
        return self.routes[bisect_right(self._bounds, bucket)]

    def pick(self, sticky_key: bytes | None = None) -> Route:
        if sticky_key is not None:
            return self.routes[bisect_right(self._bounds, sticky_bucket(sticky_key))]
        return self.routes[bisect_right(self._bounds, int(self._random() * BUCKETS))]

    def failover_for(self, failed) -> Route | None:
        """Another route (another upstream), drawn by its share among the rest; None when there is no other."""
        others = [r for r in self.routes if r.url != failed.url]
        if not others:
            return None
        return random.choices(others, weights=[r.buckets for r in others])[0]
