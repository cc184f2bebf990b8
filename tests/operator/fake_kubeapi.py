"""An in-memory, dict-backed KubeApi for fast operator tests, plus a clock the tests move.

It does what the operator relies on from the API server, no more:

- every write bumps a global resourceVersion; ``metadata.generation`` moves when anything but
  metadata and status changes; ``replace`` with a stale resourceVersion is a 409 Conflict;
  ``create`` of an existing name is a 409 AlreadyExists; ``delete`` honours a uid precondition
  (409 when it does not match, as the API server answers);
- server-side apply with field ownership: each manager's fields are kept in ``managedFields``
  (``fieldsV1``, lists are atomic); a field a manager stops applying is removed unless another
  manager owns it; a field another manager owns is a 409 unless ``force``; an Update (merge
  patch, replace) by another manager takes the fields it changes away from the others;
- label selectors ``k=v``, ``k!=v``, ``k`` joined by commas; API discovery (``group_versions``)
  of the groups ``served``; kinds of a group that is not served answer 404;
- injectable failures: ``fail(verb, kind=..., name=..., status=..., times=...)`` makes the next
  matching calls raise ApiError (status 0 reads as "could not connect");
- ``calls``: every call as (verb, kind, namespace, name), for asserting what was (not) written.

Garbage collection and deletion are explicit: ``collect_garbage()`` removes objects whose
controller owner is gone; ``delete`` removes at once unless ``finalizing`` holds the kind, in
which case a deletionTimestamp is set and the object stays until ``finish_deletion``.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from dataclasses import dataclass, field

from mlserving.operator.kinds import TABLE, Kind, kind_of
from mlserving.operator.kubeapi import ApiError

Key = tuple[str, str | None, str]  # (kind name with group, namespace, name)


class FakeClock:
    """monotonic() and now() that only move when a test calls ``advance``."""

    def __init__(self, start: float = 1_000.0, wall: float = 1_790_000_000.0):
        self._mono = start
        self._wall = wall

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += seconds


@dataclass
class _Failure:
    verb: str
    kind: str | None
    name: str | None
    status: int
    times: int
    message: str = "injected failure"


Owner = tuple[str, str, str | None]  # (manager, operation "Apply"/"Update", subresource)


@dataclass
class _Stored:
    obj: dict
    owners: dict[Owner, set[tuple]] = field(default_factory=dict)  # -> the leaf paths it owns

    def fields_of_others(self, manager: str) -> set[tuple]:
        return set().union(*(paths for owner, paths in self.owners.items() if owner[0] != manager))


def _paths(value, prefix=()) -> dict[tuple, object]:
    """Leaf paths of a manifest (dicts are walked, lists and scalars are leaves)."""
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_paths(v, prefix + (k,)))
        return out
    return {prefix: value}


def _fields_v1(paths) -> dict:
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def _get(obj: dict, path: tuple):
    node = obj
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(obj: dict, path: tuple, value) -> None:
    node = obj
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = copy.deepcopy(value)


def _remove(obj: dict, path: tuple) -> None:
    chain = [obj]
    for part in path[:-1]:
        nxt = chain[-1].get(part)
        if not isinstance(nxt, dict):
            return
        chain.append(nxt)
    chain[-1].pop(path[-1], None)
    for parent, part in zip(reversed(chain[:-1]), reversed(path[:-1]), strict=True):
        if parent.get(part) == {}:
            parent.pop(part)


_MISSING = object()
# Metadata the server owns: never taken from a client body, never part of field ownership.
_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                "deletionTimestamp", "namespace", "name")


def _owned_paths(body: dict) -> dict[tuple, object]:
    paths = _paths({k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")})
    return {p: v for p, v in paths.items() if not (p and p[0] == "metadata" and len(p) > 1 and p[1] in _SERVER_META)
            and p != ("metadata",)}


def _matches(selector: str | None, labels: dict) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubeApi:
    """Same methods and answers as ``mlserving.operator.kubeapi.KubeApi``; thread-safe."""

    def __init__(self, clock: FakeClock | None = None, served: set[str] | None = None):
        self.clock = clock or FakeClock()
        groups = {k.group for k in TABLE if not k.optional}
        self.served = set(groups if served is None else served)
        self.finalizing: set[str] = set()  # kind names whose deletes wait for finish_deletion
        self.calls: list[tuple[str, str, str | None, str | None]] = []
        self._hooks: list[tuple[str, str | None, object]] = []
        self._objects: dict[Key, _Stored] = {}
        self._failures: list[_Failure] = []
        self._rv = itertools.count(1)
        self._lock = threading.RLock()

    # -- test controls -----------------------------------------------------------------------
    def fail(self, verb: str, kind: str | None = None, name: str | None = None, status: int = 500,
             times: int = 1, message: str = "injected failure") -> None:
        """The next ``times`` calls of ``verb`` (get, list, apply, merge_patch, create, replace,
        delete, group_versions; "*" for any) on ``kind``/``name`` (None: any) raise ApiError."""
        with self._lock:
            self._failures.append(_Failure(verb, kind, name, status, times, message))

    def before(self, verb: str, kind: str | None, callback) -> None:
        """Run ``callback()`` once, just before the next ``verb`` on ``kind`` (None: any) is served:
        another client's write slipped in between a read and a write."""
        with self._lock:
            self._hooks.append((verb, kind, callback))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def writes(self) -> list[tuple[str, str, str | None, str | None]]:
        return [c for c in self.calls if c[0] not in ("get", "list", "group_versions")]

    def objects(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(s.obj) for s in self._objects.values() if kind in (None, s.obj["kind"])]

    def put(self, obj: dict, manager: str = "kubectl") -> dict:
        """Store an object as someone else would have created it (an Update by ``manager``)."""
        kind = kind_of(obj["apiVersion"], obj["kind"])
        return self.create(kind, obj["metadata"].get("namespace"), copy.deepcopy(obj), field_manager=manager)

    def edit(self, kind: Kind, namespace: str | None, name: str, change, manager: str = "kubectl-edit") -> dict:
        """A hand edit: ``change(obj)`` mutates a copy, written back as an Update by ``manager``."""
        current = self.get(kind, namespace, name)
        change(current)
        return self.replace(kind, namespace, name, current, field_manager=manager)

    def finish_deletion(self, kind: Kind, namespace: str | None, name: str) -> None:
        with self._lock:
            self._objects.pop(self._key(kind, namespace, name), None)

    def collect_garbage(self) -> list[str]:
        """Delete what the garbage collector would: objects whose controller owner uid is gone."""
        with self._lock:
            uids = {s.obj["metadata"]["uid"] for s in self._objects.values()}
            gone = [key for key, s in self._objects.items()
                    if any(r.get("controller") and r.get("uid") not in uids
                           for r in s.obj["metadata"].get("ownerReferences") or [])]
            for key in gone:
                del self._objects[key]
            return [f"{k[0]} {k[1]}/{k[2]}" for k in gone]

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _key(kind: Kind, namespace: str | None, name: str) -> Key:
        return (f"{kind.group}/{kind.kind}", namespace if kind.namespaced else None, name)

    def _enter(self, verb: str, kind: Kind | None, namespace: str | None, name: str | None) -> None:
        self.calls.append((verb, kind.kind if kind else "", namespace, name))
        for hook in list(self._hooks):
            if hook[0] == verb and hook[1] in (None, kind.kind if kind else None):
                self._hooks.remove(hook)
                hook[2]()
        for failure in self._failures:
            if (failure.verb in ("*", verb) and failure.kind in (None, kind.kind if kind else None)
                    and failure.name in (None, name) and failure.times > 0):
                failure.times -= 1
                raise ApiError(failure.status, "Injected", f"{failure.message} ({verb} {name})")
        if kind is not None and kind.group not in self.served and kind.api_version != "v1":
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({kind.plural})")

    def _bump(self, obj: dict, previous: dict | None) -> dict:
        if obj["kind"] == "Deployment":  # the API server's defaulting
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self._rv))
        if previous is None:
            meta["generation"] = 1
        else:
            def content(o):
                return {k: v for k, v in o.items() if k not in ("metadata", "status")}
            meta["generation"] = int(previous["metadata"].get("generation") or 1) + (
                content(obj) != content(previous))
        return obj

    def _managed_fields(self, stored: _Stored) -> list[dict]:
        entries = []
        for (manager, operation, subresource), paths in stored.owners.items():
            if not paths:
                continue
            entry = {"manager": manager, "operation": operation, "apiVersion": stored.obj["apiVersion"],
                     "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(paths)}
            if subresource:
                entry["subresource"] = subresource
            entries.append(entry)
        return entries

    def _answer(self, stored: _Stored) -> dict:
        obj = copy.deepcopy(stored.obj)
        obj["metadata"]["managedFields"] = self._managed_fields(stored)
        return obj

    @staticmethod
    def _take_fields(stored: _Stored, owner: Owner, paths) -> None:
        """``owner`` now owns ``paths`` (others lose them); an Apply owns exactly what it sent."""
        paths = set(paths)
        for other, owned in stored.owners.items():
            if other != owner:
                owned -= paths
        if owner[1] == "Apply":
            stored.owners[owner] = paths
        else:
            stored.owners.setdefault(owner, set()).update(paths)

    def _new(self, kind: Kind, namespace: str | None, body: dict) -> dict:
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta = obj.setdefault("metadata", {})
        for key in ("uid", "resourceVersion", "generation", "managedFields", "deletionTimestamp"):
            meta.pop(key, None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if kind.namespaced:
            meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
        return obj

    # -- the KubeApi interface ---------------------------------------------------------------
    def get(self, kind: Kind, namespace: str | None, name: str, cached: bool = False) -> dict | None:
        with self._lock:
            self._enter("get", kind, namespace, name)
            stored = self._objects.get(self._key(kind, namespace, name))
            return self._answer(stored) if stored else None

    def list(self, kind: Kind, namespace: str | None, label_selector: str | None = None,
             cached: bool = False) -> list[dict]:
        with self._lock:
            self._enter("list", kind, namespace, None)
            prefix = f"{kind.group}/{kind.kind}"
            return [self._answer(s) for (k, ns, _), s in sorted(self._objects.items(), key=lambda kv: kv[0][2])
                    if k == prefix and (namespace is None or ns == namespace)
                    and _matches(label_selector, s.obj["metadata"].get("labels") or {})]

    def apply(self, obj: dict, field_manager: str, force: bool = True, subresource: str | None = None) -> dict:
        kind = kind_of(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        with self._lock:
            self._enter("apply", kind, namespace, name)
            key = self._key(kind, namespace, name)
            sent = _owned_paths(obj)
            stored = self._objects.get(key)
            if stored is None:
                stored = _Stored(self._new(kind, namespace, {"metadata": {"name": name}}))
                previous = None
            else:
                previous = copy.deepcopy(stored.obj)
                conflicts = sorted(f"{'.'.join(map(str, p))} (owned by {owner[0]})"
                                   for owner, paths in stored.owners.items() if owner[0] != field_manager
                                   for p in sent.keys() & paths if _get(stored.obj, p) != sent[p])
                if conflicts and not force:
                    raise ApiError(409, "Conflict", "Apply failed with conflicts: " + "; ".join(conflicts))
            before = (copy.deepcopy(stored.obj), copy.deepcopy(stored.owners))
            owner = (field_manager, "Apply", subresource)
            others = stored.fields_of_others(field_manager) - sent.keys()
            for path in stored.owners.get(owner, set()) - sent.keys():
                if path not in others:
                    _remove(stored.obj, path)
            for path, value in sent.items():
                _set(stored.obj, path, value)
            self._take_fields(stored, owner, sent)
            if previous is None or before != (stored.obj, stored.owners):  # a no-op apply writes nothing
                self._bump(stored.obj, previous)
            self._objects[key] = stored
            return self._answer(stored)

    def merge_patch(self, kind: Kind, namespace: str | None, name: str, patch: dict,
                    subresource: str | None = None, field_manager: str | None = None) -> dict:
        with self._lock:
            self._enter("merge_patch", kind, namespace, name)
            stored = self._objects.get(self._key(kind, namespace, name))
            if stored is None:
                raise ApiError(404, "NotFound", f"{kind.plural} {name!r} not found")
            previous = copy.deepcopy(stored.obj)
            if subresource == "status":
                patch = {"status": patch.get("status")}
            elif "status" in patch:
                patch = {k: v for k, v in patch.items() if k != "status"}
            changed = []
            for path, value in _paths(patch).items():
                if value is None:
                    _remove(stored.obj, path)
                else:
                    _set(stored.obj, path, value)
                changed.append(path)
            self._take_fields(stored, (field_manager or "unknown", "Update", subresource), changed)
            self._bump(stored.obj, previous)
            return self._answer(stored)

    def create(self, kind: Kind, namespace: str | None, obj: dict, field_manager: str | None = None) -> dict:
        with self._lock:
            self._enter("create", kind, namespace, (obj.get("metadata") or {}).get("name"))
            new = self._new(kind, namespace, obj)
            key = self._key(kind, namespace, new["metadata"]["name"])
            if key in self._objects:
                raise ApiError(409, "AlreadyExists", f"{kind.plural} {new['metadata']['name']!r} already exists")
            stored = _Stored(new)
            self._take_fields(stored, (field_manager or "unknown", "Update", None), _owned_paths(new))
            self._bump(new, None)
            self._objects[key] = stored
            return self._answer(stored)

    def replace(self, kind: Kind, namespace: str | None, name: str, obj: dict,
                field_manager: str | None = None) -> dict:
        with self._lock:
            self._enter("replace", kind, namespace, name)
            key = self._key(kind, namespace, name)
            stored = self._objects.get(key)
            if stored is None:
                raise ApiError(404, "NotFound", f"{kind.plural} {name!r} not found")
            sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != stored.obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {kind.plural} {name!r}: "
                                                "the object has been modified; please apply your changes "
                                                "to the latest version and try again")
            previous = copy.deepcopy(stored.obj)
            new = copy.deepcopy(obj)
            new["apiVersion"], new["kind"] = kind.api_version, kind.kind
            for keep in _SERVER_META:
                if keep in previous["metadata"]:
                    new.setdefault("metadata", {})[keep] = previous["metadata"][keep]
                else:
                    new.setdefault("metadata", {}).pop(keep, None)
            new["status"] = previous.get("status")
            if new["status"] is None:
                new.pop("status")
            before, after = _owned_paths(previous), _owned_paths(new)
            changed = [p for p, v in after.items() if before.get(p, _MISSING) != v]
            for path in before.keys() - after.keys():
                for owned in stored.owners.values():
                    owned.discard(path)
            stored.obj = new
            self._take_fields(stored, (field_manager or "unknown", "Update", None), changed)
            self._bump(new, previous)
            return self._answer(stored)

    def delete(self, kind: Kind, namespace: str | None, name: str, uid: str | None = None) -> bool:
        with self._lock:
            self._enter("delete", kind, namespace, name)
            key = self._key(kind, namespace, name)
            stored = self._objects.get(key)
            if stored is None:
                return False
            if uid and stored.obj["metadata"]["uid"] != uid:
                return False  # the real API server answers 409 for a failed precondition; KubeApi maps it
            if kind.kind in self.finalizing:
                stored.obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
                self._bump(stored.obj, copy.deepcopy(stored.obj))
            else:
                del self._objects[key]
            return True

    def group_versions(self, group: str) -> list[str]:
        with self._lock:
            self._enter("group_versions", None, None, group)
            if group not in self.served:
                return []
            return sorted({k.version for k in TABLE if k.group == group})
