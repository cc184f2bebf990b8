"""``mlserving rollout pause|resume|promote|abort|retry|status md/NAME`` (also ``kubectl mlserving rollout``).

The commands set the one-shot annotation ``mlserving.io/rollout`` that the operator acts on and
removes; ``status`` prints status.rollout. Credentials: --kubeconfig, $KUBECONFIG or ~/.kube/config.
"""

from __future__ import annotations

import argparse
import json
import sys

ACTIONS = ("pause", "resume", "promote", "abort", "retry", "status")
REF_PREFIXES = ("md/", "modeldeployment/", "modeldeployments/", "modeldeployment.mlserving.io/")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="what to do with the ModelDeployment's rollout")
    parser.add_argument("target", metavar="md/NAME", help="the ModelDeployment, e.g. md/fraud")
    parser.add_argument("--namespace", "-n", help="its namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text", help="status format")


def parse_target(target: str) -> str:
    for prefix in REF_PREFIXES:
        if target.startswith(prefix):
            target = target[len(prefix):]
            break
    else:
        if "/" in target:
            raise ValueError(f"{target!r}: give the ModelDeployment as md/NAME")
    if not target:
        raise ValueError("md/NAME: the name is empty")
    return target


def describe(md: dict) -> str:
    rollout = (md.get("status") or {}).get("rollout")
    name = md["metadata"]["name"]
    if not rollout:
        return f"{name}: no rollout yet"
    lines = [f"{name}: {rollout.get('summary', '')}",
             (f"  phase {rollout.get('phase')}  step {rollout.get('step')}  weight {rollout.get('weight')}%  "
              f"failures {rollout.get('failures', 0)}"),
             f"  {rollout.get('message', '')}"]
    analysis = rollout.get("lastAnalysis")
    if analysis:
        figures = ", ".join(f"{k} {v}" for k, v in analysis.items() if k not in ("time", "verdict"))
        lines.append(f"  last analysis {analysis.get('time')}: {analysis.get('verdict')} ({figures})")
    for entry in rollout.get("history") or []:
        lines.append(f"  {entry.get('time')}  {entry.get('phase'):<11} {entry.get('weight'):>3}%  {entry.get('message')}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mlserving.operator import kubeconfig
    from mlserving.operator.kinds import KINDS
    from mlserving.operator.kubeapi import ApiError, KubeApi
    from mlserving.operator.rollout.machine import COMMAND_ANNOTATION

    try:
        name = parse_target(args.target)
        credentials = kubeconfig.load(args.kubeconfig)
        api = KubeApi(credentials)
    except Exception as exc:  # noqa: BLE001 (bad reference or kubeconfig: say which and stop)
        print(f"mlserving rollout: error: {exc}", file=sys.stderr)
        return 2
    namespace = args.namespace or credentials.namespace or "default"
    kind = KINDS[("mlserving.io/v1alpha1", "ModelDeployment")]
    try:
        if args.action == "status":
            md = api.get(kind, namespace, name)
            if md is None:
                print(f"mlserving rollout: error: modeldeployment {namespace}/{name} not found", file=sys.stderr)
                return 1
            if args.output == "json":
                print(json.dumps((md.get("status") or {}).get("rollout") or {}, indent=2))
            else:
                print(describe(md))
            return 0
        api.merge_patch(kind, namespace, name, {"metadata": {"annotations": {COMMAND_ANNOTATION: args.action}}})
    except ApiError as exc:
        print(f"mlserving rollout: error: {exc}", file=sys.stderr)
        return 1
    print(f"modeldeployment.mlserving.io/{name} {COMMAND_ANNOTATION}={args.action} (the operator acts on it and "
          "removes the annotation)")
    return 0
