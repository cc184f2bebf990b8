"""The rollout state machine (pure): previous status.rollout + observations -> next status.rollout.

No API calls and no clock: the caller passes ``now`` and an ``analyze`` callable that returns the
verdict of the interval since the last analysis (None when it has no baseline yet, e.g. after an
operator restart). The state is the dict stored in status.rollout, so a restarted operator resumes
from it. Stages: Starting (the track's pods and the routers get ready), Shadowing, Steps,
Promoting (all traffic on the track while the variant's Deployment rolls to the new version), Done.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from mlserving.operator import conditions, naming
from mlserving.operator.rollout.decision import FAILED, PASSED, Verdict
from mlserving.operator.rollout.served import served_of, track_hash
from mlserving.operator.spec import ModelDeploymentSpec

SHADOWING, PROGRESSING, PAUSED, PROMOTED, ROLLED_BACK = "Shadowing", "Progressing", "Paused", "Promoted", "RolledBack"
PHASES = (SHADOWING, PROGRESSING, PAUSED, PROMOTED, ROLLED_BACK)
ACTIVE = (SHADOWING, PROGRESSING, PAUSED)
STARTING, SHADOW, STEPS, PROMOTING, DONE = "Starting", "Shadowing", "Steps", "Promoting", "Done"

COMMAND_ANNOTATION = "mlserving.io/rollout"
COMMANDS = ("pause", "resume", "promote", "abort", "retry")
HISTORY = 10
POLL_SECONDS = 2.0  # while waiting for pods or a promotion's roll

# Event reasons: owned by operator/conditions.py.
EVENT_STARTED = conditions.EVENT_ROLLOUT_STARTED
EVENT_STEP = conditions.EVENT_ROLLOUT_STEP
EVENT_PROMOTED = conditions.EVENT_ROLLOUT_PROMOTED
EVENT_ROLLED_BACK = conditions.EVENT_ROLLOUT_ROLLED_BACK
EVENT_PAUSED = conditions.EVENT_ROLLOUT_PAUSED
EVENT_RESUMED = conditions.EVENT_ROLLOUT_RESUMED
EVENT_COMMAND_IGNORED = conditions.EVENT_ROLLOUT_COMMAND_IGNORED
EVENT_COMMAND_UNKNOWN = conditions.EVENT_ROLLOUT_COMMAND_UNKNOWN


@dataclass(frozen=True)
class Observed:
    track_ready: bool = False  # the track's Deployment rolled out, all replicas ready
    routers_ready: bool = False  # the router Deployment rolled out (runs this release)
    promoted_ready: bool = False  # the variant's Deployment rolled out serving the new version


@dataclass
class Transition:
    state: dict | None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue: float | None = None
    rebaseline: bool = False  # a new interval starts now: take a fresh metrics baseline


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def _since(state: dict, key: str, now: datetime) -> float:
    then = parse_time(state.get(key))
    return (now.replace(tzinfo=None) - then).total_seconds() if then else 0.0


def is_active(state: dict | None) -> bool:
    return bool(state) and state.get("phase") in ACTIVE


def _summary(state: dict) -> str:
    return f"{state['variant']} {state['fromVersion']}->{state['toVersion']} {state['phase']} {state['weight']}%"


def _record(t: Transition, now: datetime, message: str, event: tuple[str, str] | None = None) -> None:
    s = t.state
    s["message"] = message
    s["summary"] = _summary(s)
    s["history"] = (s.get("history") or [])[-(HISTORY - 1):] + [
        {"time": iso(now), "phase": s["phase"], "weight": s["weight"], "message": message[:300]}]
    if event:
        t.events.append((event[0], event[1], f"{_summary(s)}: {message}"))


def _start(spec: ModelDeploymentSpec, name: str, old: dict, now: datetime, t: Transition) -> None:
    variant = next(v for v in spec.variants if v.name == name)
    target = served_of(variant)
    t.state = {"phase": PROGRESSING, "stage": STARTING, "variant": name, "fromVersion": old["version"],
               "toVersion": variant.version,
               "track": f"{naming.variant_child(spec.name, name)}-{track_hash(target)}",
               "served": old, "target": target, "step": -1, "weight": 0, "failures": 0,
               "startedAt": iso(now), "stepStartedAt": iso(now), "progressAt": iso(now), "history": []}
    _record(t, now, f"starting: waiting for {t.state['track']} and the routers to be ready",
            ("Normal", EVENT_STARTED))
    t.requeue = POLL_SECONDS


def _roll_back(t: Transition, now: datetime, message: str) -> None:
    t.state.update(phase=ROLLED_BACK, stage=DONE, weight=0)
    t.state.pop("pausedPhase", None)
    _record(t, now, f"rolled back: {message}", ("Warning", EVENT_ROLLED_BACK))


def _enter(t: Transition, now: datetime, stage: str, step: int, weight: int, message: str) -> None:
    phase = SHADOWING if stage == SHADOW else PROGRESSING
    t.state.update(stage=stage, step=step, weight=weight, stepStartedAt=iso(now), progressAt=iso(now))
    if t.state.get("phase") == PAUSED:
        t.state["pausedPhase"] = phase
    else:
        t.state["phase"] = phase
    t.rebaseline = True
    _record(t, now, message, ("Normal", EVENT_STEP))


def _after_shadow_or_start(t: Transition, spec: ModelDeploymentSpec, now: datetime) -> None:
    steps = spec.rollout.steps
    _enter(t, now, STEPS, 0, steps[0], f"step 1 of {len(steps)}: {steps[0]}% of the variant's traffic")


def step(spec: ModelDeploymentSpec, previous: dict | None, served: dict[str, dict | None], observed: Observed,
         now: datetime, analyze: Callable[[bool], Verdict | None], command: str | None = None) -> Transition:
    """The next state. ``served``: variant name -> what its Deployment serves (None: unknown)."""
    t = Transition(copy.deepcopy(previous) if previous else None)
    rollout = spec.rollout
    state = t.state

    if command is not None and command not in COMMANDS:
        t.events.append(("Warning", EVENT_COMMAND_UNKNOWN, (f"{COMMAND_ANNOTATION}: unknown value {command!r} "
                         f"(one of {', '.join(COMMANDS)}); removed")))
        command = None

    if rollout is None:
        if is_active(state):
            state.update(phase=PROMOTED, stage=DONE, weight=100)
            _record(t, now, "spec.rollout removed: the variant rolls to the new version at once")
        return t

    # A version change (or a retry) starts a rollout when none is running.
    if not is_active(state):
        for v in spec.live_variants:
            old = served.get(v.name)
            if old is None or old.get("version") == v.version:
                continue
            held = (state and state.get("phase") == ROLLED_BACK and state.get("variant") == v.name
                    and state.get("toVersion") == v.version)
            if held and command != "retry":
                continue
            if command == "retry":
                command = None
            _start(spec, v.name, old, now, t)
            return t
        if command is not None:
            t.events.append(("Normal", EVENT_COMMAND_IGNORED, f"{COMMAND_ANNOTATION}={command}: no rollout running"))
        return t

    variant = next((v for v in spec.variants if v.name == state["variant"]), None)
    if variant is None or variant.mirror:
        _roll_back(t, now, f"variant {state['variant']} is no longer a live variant of the spec")
        return t
    if variant.version != state["toVersion"]:
        if variant.version == state["fromVersion"]:
            _roll_back(t, now, f"the spec returned to {state['fromVersion']}")
            return t
        old = state["served"]
        _roll_back(t, now, f"superseded by version {variant.version}")
        _start(spec, variant.name, old, now, t)
        return t

    if command == "abort":
        _roll_back(t, now, f"aborted by {COMMAND_ANNOTATION}=abort")
        return t
    if command == "promote":
        state.pop("pausedPhase", None)
        state.update(phase=PROGRESSING, stage=PROMOTING, weight=100, progressAt=iso(now))
        _record(t, now, f"promoting by {COMMAND_ANNOTATION}=promote: all traffic on {state['toVersion']} "
                        f"while {naming.variant_child(spec.name, variant.name)} rolls to it", ("Normal", EVENT_STEP))
        t.requeue = POLL_SECONDS
        return t
    if command == "pause":
        if state["phase"] != PAUSED:
            state["pausedPhase"] = state["phase"]
            state["phase"] = PAUSED
            _record(t, now, f"paused by {COMMAND_ANNOTATION}=pause at {state['weight']}%", ("Normal", EVENT_PAUSED))
        return t
    if command == "resume":
        if state["phase"] == PAUSED:
            state["phase"] = state.pop("pausedPhase", PROGRESSING)
            state.update(stepStartedAt=iso(now), progressAt=iso(now))
            state.pop("lastAnalysisAt", None)
            t.rebaseline = True
            _record(t, now, f"resumed by {COMMAND_ANNOTATION}=resume at {state['weight']}%", ("Normal", EVENT_RESUMED))
        else:
            t.events.append(("Normal", EVENT_COMMAND_IGNORED, f"{COMMAND_ANNOTATION}=resume: not paused"))
    elif command == "retry":
        t.events.append(("Normal", EVENT_COMMAND_IGNORED, f"{COMMAND_ANNOTATION}=retry: a rollout is running"))

    if state["phase"] == PAUSED:
        return t

    stage = state["stage"]
    if stage == PROMOTING:
        if observed.promoted_ready:
            state.update(phase=PROMOTED, stage=DONE, weight=100)
            _record(t, now, f"promoted: {naming.variant_child(spec.name, variant.name)} serves "
                            f"{state['toVersion']}", ("Normal", EVENT_PROMOTED))
        else:
            t.requeue = POLL_SECONDS
        return t

    if _since(state, "progressAt", now) > rollout.progress_deadline_seconds:
        _roll_back(t, now, f"no progress for {rollout.progress_deadline_seconds} s (progressDeadlineSeconds): "
                           f"{state.get('message', '')}")
        return t

    if stage == STARTING:
        if observed.track_ready and observed.routers_ready:
            if rollout.shadow_seconds > 0:
                _enter(t, now, SHADOW, -1, 0, f"shadowing for {rollout.shadow_seconds} s: the variant's "
                                              f"traffic is mirrored to {state['toVersion']} and compared")
            else:
                _after_shadow_or_start(t, spec, now)
            t.requeue = float(max(rollout.interval_seconds, 1))
        else:
            t.requeue = POLL_SECONDS
        return t

    due = max(rollout.interval_seconds - _since(state, "lastAnalysisAt" if state.get("lastAnalysisAt")
                                                else "stepStartedAt", now), 0.0)
    if due > 0:
        t.requeue = due
        return t
    verdict = analyze(stage == SHADOW)
    t.requeue = float(max(rollout.interval_seconds, 1))
    if verdict is None:  # no baseline (operator restarted): this interval starts now
        state["lastAnalysisAt"] = iso(now)
        return t
    state["lastAnalysisAt"] = iso(now)
    state["lastAnalysis"] = {"time": iso(now), "verdict": verdict.verdict, **verdict.measured, **(
        {"failedCheck": verdict.failed_check, "value": round(verdict.value, 6), "limit": verdict.limit}
        if verdict.verdict == FAILED else {})}
    if verdict.verdict == FAILED:
        state["failures"] = int(state.get("failures", 0)) + 1
        if state["failures"] >= rollout.failure_limit:
            _roll_back(t, now, f"{state['failures']} failed analyses in a row; {verdict.message}")
            return t
        state["message"] = f"analysis failed ({state['failures']} of {rollout.failure_limit}): {verdict.message}"
        return t
    if verdict.verdict != PASSED:
        state["message"] = f"inconclusive: {verdict.message}"
        return t
    state["failures"] = 0
    state["progressAt"] = iso(now)
    steps = rollout.steps
    if stage == SHADOW:
        if _since(state, "stepStartedAt", now) >= rollout.shadow_seconds:
            _after_shadow_or_start(t, spec, now)
        else:
            state["message"] = f"shadowing: {verdict.message}"
        return t
    nxt = state["step"] + 1
    if nxt < len(steps):
        _enter(t, now, STEPS, nxt, steps[nxt], f"step {nxt + 1} of {len(steps)}: {steps[nxt]}% ({verdict.message})")
    else:
        state.update(stage=PROMOTING, weight=100)
        _record(t, now, f"promoting after {len(steps)} steps ({verdict.message}): all traffic on "
                        f"{state['toVersion']} while {naming.variant_child(spec.name, variant.name)} rolls to it",
                ("Normal", EVENT_STEP))
        t.requeue = POLL_SECONDS
    return t
