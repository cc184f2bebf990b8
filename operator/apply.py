"""Server-side apply of a ModelDeployment's children, ownership checks and pruning.

Rules:
- Every child is written with server-side apply, field manager ``mlserving-operator``. ``force``
  is set so a field we own that someone changed by hand is taken back; fields we do not send
  stay with whoever set them (that is what SSA's per-field ownership gives us).
- ``force`` is only ever used on objects that are ours: a child name that is already taken by an
  object without our controller ownerReference is never written. All names are checked before
  the first write, so a conflict leaves nothing half-applied.
- Pruning: objects of each child kind carrying our instance and managed-by labels and our owner
  uid, but no longer desired, are deleted (with a uid precondition, so a newer object of the same
  name is never hit).
- Handing ``replicas`` to an HPA: a field we stop applying is removed, and the API server then
  defaults a Deployment's ``replicas`` to 1. So before the first apply without ``replicas``, a
  second field manager (``HANDOVER_MANAGER``) applies the live count; the field stays at that
  value, owned by it, until the HPA's own writes take it over.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlserving.operator import naming
from mlserving.operator.kinds import Kind, apply_rank, kind_of_object
from mlserving.operator.kubeapi import ApiError, KubeApi
from mlserving.operator.spec import KIND as MD_KIND

FIELD_MANAGER = naming.FIELD_MANAGER
HANDOVER_MANAGER = f"{naming.FIELD_MANAGER}-handover"


class OwnershipConflict(Exception):
    """A child's name is taken by an object that is not controlled by this ModelDeployment."""

    def __init__(self, conflicts: list[str]):
        self.conflicts = conflicts
        super().__init__("refusing to take over existing objects: " + "; ".join(conflicts))


class WaitingForPredecessor(Exception):
    """A child's name is held by a child of a deleted ModelDeployment of the same name, still being
    garbage-collected, or by an object being deleted. Retrying shortly fixes it."""


class ApplyFailed(Exception):
    """A write failed part-way; ``applied`` says what is already in place."""

    def __init__(self, child: str, error: ApiError, applied: list[str], total: int):
        self.child, self.error, self.applied, self.total = child, error, applied, total
        super().__init__(f"applied {len(applied)} of {total} children; {child}: {error}")

    @property
    def permanent(self) -> bool:
        # The API server refused the object itself (schema/validation): re-sending it cannot help.
        return self.error.status in (400, 422)


@dataclass
class ApplyOutcome:
    live: list[dict] = field(default_factory=list)  # the apply responses, in apply order
    pruned: list[str] = field(default_factory=list)

    def live_of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.live if obj.get("kind") == kind]


def controller_of(obj: dict) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}"


def selector_for(md_name: str) -> str:
    return f"{naming.LABEL_INSTANCE}={md_name},{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"


def _our_apply_entry(obj: dict) -> dict | None:
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if (entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
                and not entry.get("subresource")):
            return entry
    return None


def we_apply_replicas(obj: dict) -> bool:
    entry = _our_apply_entry(obj) or {}
    return "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})


def our_fields_fingerprint(obj: dict) -> str | None:
    """A digest of the fields our field manager owns on ``obj`` (None: we own nothing there).

    When anyone else changes or removes a field we applied, ownership of that field leaves our
    managedFields entry, so the digest changes; status and scale updates by controllers do not
    touch it. This is how a hand edit is told apart from routine controller writes cheaply.
    """
    entry = _our_apply_entry(obj)
    if entry is None:
        return None
    raw = json.dumps(entry.get("fieldsV1") or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def _prepared(md: dict, child: dict) -> dict:
    """The child as sent. The renderer sets namespace and owner reference (children/common.py);
    a child that is not controlled by ``md`` would escape the ownership check, so it is refused."""
    meta = child.get("metadata") or {}
    ref = controller_of(child) or {}
    if meta.get("namespace") != md["metadata"]["namespace"] or ref.get("uid") != md["metadata"]["uid"]:
        raise ValueError(f"{describe(child)} is not a namespaced child controlled by "
                         f"{MD_KIND} {md['metadata']['name']} (uid {md['metadata']['uid']})")
    return child


def sort_children(children: list[dict]) -> list[dict]:
    """In the kinds table's order (operator/kinds.py): dependencies first."""
    return sorted(children, key=apply_rank)


def waves(children: list[dict]) -> list[list[dict]]:
    """Children applied together, wave after wave: what a wave needs exists before it is written."""
    out: dict[int, list[dict]] = {}
    for child in sort_children(children):
        out.setdefault(kind_of_object(child).wave, []).append(child)
    return [out[wave] for wave in sorted(out)]


class ChildApplier:
    """Applies one ModelDeployment's desired children and prunes the rest.

    The requests of one step (the lists, the name lookups, the writes of one wave) are sent in
    parallel: a reconcile then costs a few round trips instead of one per child.
    """

    def __init__(self, api: KubeApi, parallel: int = 8):
        self.api = api
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="apply")

    def existing_children(self, md: dict, kinds: list[Kind]) -> dict[tuple[str, str], dict]:
        """Our labelled children of each kind, keyed by (kind, name)."""
        meta = md["metadata"]
        selector = selector_for(meta["name"])
        found = {}
        # From the watch cache (no etcd round trip). A child created a moment ago may be missing
        # from it; should that child be unwanted already, the next reconcile (at the latest the
        # periodic resync) prunes it.
        listed = self._pool.map(lambda kind: (kind, self.api.list(kind, meta["namespace"], selector, cached=True)),
                                kinds)
        for kind, items in listed:
            for obj in items:
                obj.setdefault("kind", kind.kind)
                obj.setdefault("apiVersion", kind.api_version)
                found[(kind.kind, obj["metadata"]["name"])] = obj
        return found

    def check_ownership(self, md: dict, desired: list[dict],
                        existing: dict[tuple[str, str], dict]) -> None:
        uid = md["metadata"]["uid"]
        namespace = md["metadata"]["namespace"]

        def current(child: dict) -> dict | None:
            found = existing.get((child["kind"], child["metadata"]["name"]))
            if found is not None:
                return found
            # Not labelled as ours: it may still exist under that name, made by someone else.
            # The watch cache is enough here (no etcd read per child of every new object).
            return self.api.get(kind_of_object(child), namespace,
                                child["metadata"]["name"], cached=True)

        conflicts, waiting = [], []
        for child, obj in zip(desired, self._pool.map(current, desired), strict=True):
            if obj is None:
                continue
            ref = controller_of(obj)
            if ref and ref.get("uid") == uid:
                continue
            if obj["metadata"].get("deletionTimestamp"):
                waiting.append(f"{describe(child)} is being deleted")
            elif ref and ref.get("kind") == MD_KIND and ref.get("name") == md["metadata"]["name"]:
                waiting.append(f"{describe(child)} still belongs to a deleted ModelDeployment of the "
                               "same name (garbage collection pending)")
            else:
                owner = f"controlled by {ref.get('kind')} {ref.get('name')}" if ref else "not controlled by it"
                conflicts.append(f"{describe(child)} already exists and is {owner}")
        if conflicts:
            raise OwnershipConflict(conflicts)
        if waiting:
            raise WaitingForPredecessor("; ".join(waiting))

    def _apply_one(self, child: dict) -> tuple[dict, dict | ApiError]:
        try:
            return child, self.api.apply(child, FIELD_MANAGER, force=True)
        except ApiError as exc:
            return child, exc

    def apply(self, md: dict, desired: list[dict], kinds: list[Kind]) -> ApplyOutcome:
        """Check, apply wave by wave, then prune. Raises OwnershipConflict,
        WaitingForPredecessor or ApplyFailed; ApiError from the reads before any write."""
        desired = sort_children([_prepared(md, child) for child in desired])
        existing = self.existing_children(md, kinds)
        self.check_ownership(md, desired, existing)
        self.hand_over_replicas(desired, existing)

        outcome = ApplyOutcome()
        applied: list[str] = []
        for wave in waves(desired):
            failed = None
            for child, result in self._pool.map(self._apply_one, wave):
                if isinstance(result, ApiError):
                    failed = failed or (child, result)
                    continue
                result.setdefault("kind", child["kind"])
                outcome.live.append(result)
                applied.append(describe(child))
            if failed:  # the wave's other writes are done; later waves are not started
                raise ApplyFailed(describe(failed[0]), failed[1], applied, len(desired)) from failed[1]
        self.prune(md, desired, existing, outcome, applied)
        return outcome

    def hand_over_replicas(self, desired: list[dict], existing: dict[tuple[str, str], dict]) -> None:
        """Keep the live replica count of a Deployment whose ``replicas`` we stop applying."""
        for child in desired:
            meta = child["metadata"]
            live = existing.get((child["kind"], meta["name"]))
            if child["kind"] != "Deployment" or "replicas" in child["spec"] or live is None \
                    or not we_apply_replicas(live):
                continue
            keep = {"apiVersion": child["apiVersion"], "kind": child["kind"],
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                    "spec": {"replicas": live["spec"]["replicas"]}}
            try:
                self.api.apply(keep, HANDOVER_MANAGER, force=True)
            except ApiError as exc:
                raise ApplyFailed(f"handing the replicas of {describe(child)} to its HPA", exc, [],
                                  len(desired)) from exc

    def prune(self, md: dict, desired: list[dict], existing: dict[tuple[str, str], dict],
              outcome: ApplyOutcome, applied: list[str]) -> None:
        """Delete our children that are no longer desired (only those controlled by ``md``)."""
        wanted = {(c["kind"], c["metadata"]["name"]) for c in desired}
        uid = md["metadata"]["uid"]
        for key, obj in existing.items():
            ref = controller_of(obj)
            if key in wanted or not ref or ref.get("uid") != uid:
                continue
            try:
                if self.api.delete(kind_of_object(obj), md["metadata"]["namespace"], key[1],
                                   uid=obj["metadata"]["uid"]):
                    outcome.pruned.append(describe(obj))
            except ApiError as exc:
                raise ApplyFailed(f"pruning {describe(obj)}", exc, applied, len(desired)) from exc
