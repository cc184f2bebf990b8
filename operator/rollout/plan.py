"""What the renderers need from a rollout (pure): which spec each variant's Deployment is rendered
from, the track (the new version's Deployment and Service) and the routing table's tracks."""

from __future__ import annotations

from dataclasses import dataclass

from mlserving.operator.rollout.machine import DONE, PROMOTING, ROLLED_BACK, SHADOW, STARTING, is_active
from mlserving.operator.rollout.served import variant_from
from mlserving.operator.spec import ModelDeploymentSpec, Variant


@dataclass(frozen=True)
class Track:
    variant: str
    name: str  # <md>-<variant>-<hash>: its Deployment and Service
    target: Variant  # the new version, as the spec gives it
    from_version: str
    weight: int  # percent of the variant's traffic on the track
    shadow: bool  # mirrored and compared instead of a share
    in_table: bool  # the routing table splits the variant (not while starting)


@dataclass(frozen=True)
class RolloutPlan:
    rendered: dict[str, Variant]  # variant name -> what its own Deployment serves
    track: Track | None
    router_selected: bool  # the stable Service may select the router


def plan(spec: ModelDeploymentSpec, state: dict | None, served: dict[str, dict | None],
         router_available: bool) -> RolloutPlan | None:
    """None without spec.rollout: every variant renders from the spec, as without rollouts."""
    if spec.rollout is None:
        return None
    rendered: dict[str, Variant] = {}
    active = is_active(state)
    stage = (state or {}).get("stage")
    for v in spec.variants:
        if v.mirror:
            rendered[v.name] = v
            continue
        mine = state is not None and state.get("variant") == v.name
        if mine and (active and stage != PROMOTING or state.get("phase") == ROLLED_BACK
                     and state.get("toVersion") == v.version):
            rendered[v.name] = variant_from(state["served"], v)  # the old version serves until the end
        elif mine and stage in (PROMOTING, DONE):
            rendered[v.name] = v
        elif served.get(v.name) and served[v.name]["version"] != v.version:
            rendered[v.name] = variant_from(served[v.name], v)  # waits for its own rollout
        else:
            rendered[v.name] = v
    track = None
    if active:
        target = next(v for v in spec.variants if v.name == state["variant"])
        track = Track(variant=target.name, name=state["track"], target=target, from_version=state["fromVersion"],
                      weight=int(state.get("weight", 0)), shadow=stage == SHADOW, in_table=stage != STARTING)
    # A single variant that gains spec.rollout keeps its Service on the variant's pods until the
    # router it now has serves (an available pod; a later rolling update of the router keeps one),
    # so adding spec.rollout never empties the Service.
    return RolloutPlan(rendered=rendered, track=track,
                       router_selected=spec.router_from_creation or router_available)
