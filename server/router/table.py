"""The routing table (docs/api.md, "Routing table"): parsing and validation.

A table is accepted or refused as a whole. Validation collects every broken rule so an operator
fixing a table sees all of them at once, each naming the field and the rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_VARIANTS = 8
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# RFC 9110 token characters: what a header name may consist of.
_HEADER_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Returned in a response header: visible ASCII only, so a table can never inject a header line.
_VERSION = re.compile(r"[\x21-\x7e]{1,128}")
_TOP_FIELDS = {"format", "generation", "stickyHeader", "variants"}
_VARIANT_FIELDS = {"name", "version", "url", "weight", "mirror", "tracks"}
_TRACK_FIELDS = {"version", "url", "weight", "shadow"}
FORMATS = (1, 2)  # 2: variants may carry tracks (a rollout in progress)
MAX_TRACKS = 4


class TableError(ValueError):
    """A routing table broke one or more rules; ``problems`` lists them as 'field: rule'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Track:
    """One version a variant is split between during a rollout."""

    version: str
    url: str
    weight: int  # percent of the variant's traffic
    shadow: bool = False  # gets a compared copy of the variant's requests instead of a share


@dataclass(frozen=True)
class Variant:
    name: str
    version: str
    url: str  # base URL, no trailing slash
    weight: int
    mirror: bool
    tracks: tuple[Track, ...] = ()

    @property
    def live(self) -> bool:
        """Receives primary traffic (a mirror or a weight-0 variant does not)."""
        return not self.mirror and self.weight > 0


@dataclass(frozen=True)
class RoutingTable:
    generation: int
    sticky_header: str | None  # lower-cased, as ASGI servers present header names
    variants: tuple[Variant, ...]
    format: int = 1

    @property
    def live(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.live)

    @property
    def mirrors(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.mirror)

    def describe(self) -> str:
        def part(v: Variant) -> str:
            share = "mirror" if v.mirror else str(v.weight)
            if v.tracks:
                share += "[" + ",".join(f"{t.version}:{'shadow' if t.shadow else t.weight}" for t in v.tracks) + "]"
            return f"{v.name}={share}"
        parts = [part(v) for v in self.variants]
        return f"generation {self.generation} ({', '.join(parts)})"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_url(field: str, url, problems: list[str]) -> str | None:
    if not isinstance(url, str):
        problems.append(f"{field}: must be an http:// or https:// URL string, got {type(url).__name__}")
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        problems.append(f"{field}: not a valid URL ({exc}): {url!r}")
        return None
    if parts.scheme not in ("http", "https"):
        problems.append(f"{field}: must use http:// or https://, got {url!r}")
        return None
    if not parts.hostname:
        problems.append(f"{field}: has no host: {url!r}")
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        problems.append(f"{field}: must be a base URL without path, query or fragment, got {url!r}")
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _check_variant(index: int, raw, problems: list[str]) -> Variant | None:
    where = f"variants[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object, got {type(raw).__name__}")
        return None
    before = len(problems)
    for key in sorted(set(raw) - _VARIANT_FIELDS):
        problems.append(f"{where}.{key}: unknown field (allowed: {', '.join(sorted(_VARIANT_FIELDS))})")
    for key in ("name", "version", "url", "weight", "mirror"):
        if key not in raw:
            problems.append(f"{where}.{key}: required")
    name, version, weight, mirror = raw.get("name"), raw.get("version"), raw.get("weight"), raw.get("mirror")
    if "name" in raw and not (isinstance(name, str) and len(name) <= 63 and _DNS_1035.fullmatch(name)):
        problems.append(f"{where}.name: must be a DNS-1035 label (lower-case letters, digits and '-', "
                        f"starting with a letter, at most 63 characters), got {name!r}")
    if "version" in raw and not (isinstance(version, str) and _VERSION.fullmatch(version)):
        problems.append(f"{where}.version: must be 1 to 128 visible ASCII characters (no spaces), "
                        f"got {version!r}")
    if "weight" in raw and not (_is_int(weight) and 0 <= weight <= 100):
        problems.append(f"{where}.weight: must be an integer from 0 to 100, got {weight!r}")
    if "mirror" in raw and not isinstance(mirror, bool):
        problems.append(f"{where}.mirror: must be true or false, got {mirror!r}")
    url = _check_url(f"{where}.url", raw["url"], problems) if "url" in raw else None
    tracks = _check_tracks(where, raw["tracks"], problems) if "tracks" in raw else ()
    if len(problems) > before:
        return None
    if mirror and weight != 0:
        problems.append(f"{where}.weight: a mirror variant must have weight 0, got {weight}")
        return None
    if tracks and mirror:
        problems.append(f"{where}.tracks: a mirror variant cannot be split into tracks")
        return None
    if tracks and (tracks[0].version, tracks[0].url) != (version, url):
        problems.append(f"{where}.tracks[0]: must be the variant's own version and url "
                        f"({version!r} at {url!r}), got {tracks[0].version!r} at {tracks[0].url!r}")
        return None
    return Variant(name=name, version=version, url=url, weight=weight, mirror=mirror, tracks=tracks)


def _check_tracks(where: str, raw, problems: list[str]) -> tuple[Track, ...]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_TRACKS:
        count = len(raw) if isinstance(raw, list) else type(raw).__name__
        problems.append(f"{where}.tracks: must be a list of 2 to {MAX_TRACKS} tracks, got {count}")
        return ()
    before = len(problems)
    tracks = []
    for i, item in enumerate(raw):
        at = f"{where}.tracks[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be an object, got {type(item).__name__}")
            continue
        for key in sorted(set(item) - _TRACK_FIELDS):
            problems.append(f"{at}.{key}: unknown field (allowed: {', '.join(sorted(_TRACK_FIELDS))})")
        for key in ("version", "url", "weight"):
            if key not in item:
                problems.append(f"{at}.{key}: required")
        version, weight, shadow = item.get("version"), item.get("weight"), item.get("shadow", False)
        if "version" in item and not (isinstance(version, str) and _VERSION.fullmatch(version)):
            problems.append(f"{at}.version: must be 1 to 128 visible ASCII characters (no spaces), got {version!r}")
        if "weight" in item and not (_is_int(weight) and 0 <= weight <= 100):
            problems.append(f"{at}.weight: must be an integer from 0 to 100, got {weight!r}")
        if not isinstance(shadow, bool):
            problems.append(f"{at}.shadow: must be true or false, got {shadow!r}")
        elif shadow and weight != 0:
            problems.append(f"{at}.weight: a shadow track must have weight 0, got {weight!r}")
        url = _check_url(f"{at}.url", item["url"], problems) if "url" in item else None
        if len(problems) == before:
            tracks.append(Track(version=version, url=url, weight=weight, shadow=shadow))
    if len(problems) > before:
        return ()
    if tracks[0].shadow:
        problems.append(f"{where}.tracks[0].shadow: the first track is the variant's own and cannot be a shadow")
    total = sum(t.weight for t in tracks if not t.shadow)
    if total != 100:
        problems.append(f"{where}.tracks[].weight: the weights of a variant's non-shadow tracks must sum to 100, "
                        f"got {total}")
    return tuple(tracks) if len(problems) == before else ()


def parse_table(raw: bytes | str) -> RoutingTable:
    """Parse and validate a routing table; raise TableError naming every broken rule."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TableError([f"routing table: not valid JSON ({exc})"]) from None
    if not isinstance(doc, dict):
        raise TableError([f"routing table: must be a JSON object, got {type(doc).__name__}"])
    problems: list[str] = []
    for key in sorted(set(doc) - _TOP_FIELDS):
        problems.append(f"{key}: unknown field (allowed: {', '.join(sorted(_TOP_FIELDS))})")
    table_format = doc.get("format", 1)
    if not (_is_int(table_format) and table_format in FORMATS):
        problems.append(f"format: must be one of {', '.join(map(str, FORMATS))}, got {table_format!r}")

    generation = doc.get("generation")
    if not (_is_int(generation) and generation >= 0):
        problems.append(f"generation: must be an integer >= 0, got {generation!r}")

    if "stickyHeader" not in doc:
        problems.append("stickyHeader: required (a header name, or null to turn stickiness off)")
    sticky = doc.get("stickyHeader")
    if sticky is not None and not (isinstance(sticky, str) and _HEADER_TOKEN.fullmatch(sticky)):
        problems.append(f"stickyHeader: must be an HTTP header name or null, got {sticky!r}")

    raw_variants = doc.get("variants")
    variants: list[Variant] = []
    if not isinstance(raw_variants, list) or not 1 <= len(raw_variants) <= MAX_VARIANTS:
        count = len(raw_variants) if isinstance(raw_variants, list) else type(raw_variants).__name__
        problems.append(f"variants: must be a list of 1 to {MAX_VARIANTS} variants, got {count}")
    else:
        for i, item in enumerate(raw_variants):
            variant = _check_variant(i, item, problems)
            if variant is not None:
                variants.append(variant)
        if len(variants) == len(raw_variants):
            _check_variant_set(variants, problems)
            if table_format == 1 and any(v.tracks for v in variants):
                problems.append("format: a table whose variants carry tracks must say \"format\": 2")

    if problems:
        raise TableError(problems)
    return RoutingTable(generation=generation, sticky_header=sticky.lower() if sticky else None,
                        variants=tuple(variants), format=table_format)


def _check_variant_set(variants: list[Variant], problems: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(variants):
        if v.name in seen:
            problems.append(f"variants[{i}].name: duplicate name {v.name!r} (also variants[{seen[v.name]}])")
        seen.setdefault(v.name, i)
    primaries = [v for v in variants if not v.mirror]
    if not any(v.live for v in variants):
        problems.append("variants: no live variant (at least one non-mirror variant needs a weight above 0)")
    total = sum(v.weight for v in primaries)
    if primaries and total != 100:
        problems.append(f"variants[].weight: the weights of non-mirror variants must sum to 100, got {total}")
