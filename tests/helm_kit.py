"""Rendering and installing charts/mlserving with the helm binary of the ``helm`` fixture."""

from __future__ import annotations

import json
import pathlib
import subprocess

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "mlserving"
# What Helm's templates add to deploy/'s labels (metadata and pod template).
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
               "app.kubernetes.io/version")


def run_helm(helm: pathlib.Path, *args: str, values: dict | None = None, kubeconfig: pathlib.Path | None = None,
             check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``helm *args`` with ``values`` given as a values file on stdin (``-f -``)."""
    cmd = [str(helm), *args]
    if values is not None:
        cmd += ["-f", "-"]
    if kubeconfig:
        cmd += ["--kubeconfig", str(kubeconfig)]
    proc = subprocess.run(cmd, input=json.dumps(values) if values is not None else None, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def template(helm: pathlib.Path, values: dict | None = None, namespace: str = "mlserving-system",
             crds: bool = False) -> str:
    args = ["template", "mlserving", str(CHART), "-n", namespace] + (["--include-crds"] if crds else [])
    return run_helm(helm, *args, values=values).stdout


def render(helm: pathlib.Path, values: dict | None = None, namespace: str = "mlserving-system",
           crds: bool = False) -> list[dict]:
    return [d for d in yaml.safe_load_all(template(helm, values, namespace, crds)) if d]


def refusal(helm: pathlib.Path, values: dict) -> str:
    """helm template's error for values it must refuse."""
    proc = run_helm(helm, "template", "mlserving", str(CHART), values=values, check=False)
    assert proc.returncode != 0, f"helm accepted {values}:\n{proc.stdout[:2000]}"
    return proc.stderr


def without_helm_labels(obj: dict) -> dict:
    obj = json.loads(json.dumps(obj))
    holders = [obj["metadata"], ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}]
    for meta in holders:
        labels = meta.get("labels") or {}
        for key in HELM_LABELS:
            labels.pop(key, None)
    return obj


def by_identity(docs: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}
