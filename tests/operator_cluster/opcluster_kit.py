"""Helpers for the operator acceptance tests: a real `mlserving operator` process and polling.

The operator runs as ``.venv/bin/mlserving operator`` (whatever ``mlserving`` is next to the
test interpreter), with its own Lease, watching the namespaces it is given.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml
from mlserving.operator.children import child_kinds, desired_children
from mlserving.operator.kinds import KINDS
from mlserving.operator.kubeapi import KubeApi
from mlserving.operator.settings import OperatorSettings

REPO = pathlib.Path(__file__).resolve().parents[2]
MLSERVING = pathlib.Path(sys.executable).with_name("mlserving")
MD = KINDS[("mlserving.io/v1alpha1", "ModelDeployment")]
DEPLOYMENT = KINDS[("apps/v1", "Deployment")]
REPLICASET = KINDS[("apps/v1", "ReplicaSet")]
SERVICE = KINDS[("v1", "Service")]
CONFIGMAP = KINDS[("v1", "ConfigMap")]
HPA = KINDS[("autoscaling/v2", "HorizontalPodAutoscaler")]
LEASE = KINDS[("coordination.k8s.io/v1", "Lease")]
EVENT = KINDS[("v1", "Event")]
COMMON_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
                 "mlserving.io/model-deployment")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = 60.0, interval: float = 0.25):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except AssertionError as exc:  # lets checks explain themselves
            last = f"AssertionError: {exc}"
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class OperatorProcess:
    """One `mlserving operator` process with a log file; restartable, killable."""

    def __init__(self, kubeconfig: pathlib.Path, namespaces: list[str], lease_namespace: str,
                 lease_name: str, identity: str, log_dir: pathlib.Path, extra_env: dict | None = None,
                 bin_dir: pathlib.Path | None = None):
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.identity = identity
        self.log_path = log_dir / f"operator-{identity}.log"
        self.port = free_port()
        self.env = dict(os.environ)
        if bin_dir:
            self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"
        self.env.update({
            "KUBECONFIG": str(kubeconfig),
            "MLSERVING_LEASE_NAMESPACE": lease_namespace,
            "MLSERVING_LEASE_NAME": lease_name,
            "MLSERVING_OPERATOR_ID": identity,
            "MLSERVING_LEASE_DURATION": "6",
            "MLSERVING_RESYNC_SECONDS": "60",
            "PYTHONUNBUFFERED": "1",
        })
        self.env.pop("KUBERNETES_SERVICE_HOST", None)
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        cmd = [str(MLSERVING), "operator", "--kubeconfig", str(self.kubeconfig),
               "--liveness", f"http://127.0.0.1:{self.port}/healthz"]
        for ns in self.namespaces:
            cmd += ["--namespace", ns]
        return cmd

    def start(self) -> OperatorProcess:
        with open(self.log_path, "a") as log:
            log.write(f"\n==== start {time.strftime('%H:%M:%S')}: {' '.join(self.command)}\n")
            log.flush()
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO, start_new_session=True)
        return self

    def health(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                return resp.read().decode().strip()
        except OSError:
            return ""

    def wait_leader(self, timeout: float = 60.0) -> None:
        def leading():
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.log_tail()}")
            return self.health() == "leader" and "starting to reconcile" in self.log()
        wait_for(f"operator {self.identity} to lead", leading, timeout)
        time.sleep(1.0)  # kopf starts its watch streams right after the startup handler returns

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0


def service_account_kubeconfig(cluster, path: pathlib.Path, account: str, namespace: str) -> pathlib.Path:
    """A kubeconfig holding a TokenRequest token of ServiceAccount namespace/account: only its permissions."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    entry = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "local", "cluster": entry["cluster"]}],
              "users": [{"name": account, "user": {"token": token}}],
              "contexts": [{"name": account, "context": {"cluster": "local", "user": account}}],
              "current-context": account}
    path.write_text(yaml.safe_dump(config))
    return path


def can_i(cluster, kubeconfig: pathlib.Path, *args: str) -> str:
    """``kubectl auth can-i`` with the given credentials: "yes" or "no"."""
    return cluster.kubectl("auth", "can-i", "--kubeconfig", str(kubeconfig), *args, check=False).stdout.strip()


def api_for(kubeconfig: pathlib.Path) -> KubeApi:
    return KubeApi.from_kubeconfig(str(kubeconfig))


def load_example(name: str) -> dict:
    md = yaml.safe_load((REPO / "examples" / name).read_text())
    md["metadata"].pop("namespace", None)
    return md


def create_md(api: KubeApi, namespace: str, md: dict) -> dict:
    md = copy.deepcopy(md)
    md["metadata"]["namespace"] = namespace
    return api.create(MD, namespace, md)


def patch_md(api: KubeApi, namespace: str, name: str, mutate) -> dict:
    """Read, change with ``mutate(spec)``, write back (with resourceVersion, retried on conflict)."""
    for _ in range(5):
        md = api.get(MD, namespace, name)
        mutate(md["spec"])
        try:
            return api.replace(MD, namespace, name, md)
        except Exception as exc:
            if "409" not in str(exc):
                raise
    raise AssertionError(f"could not update ModelDeployment {namespace}/{name}")


def expected_children(api: KubeApi, namespace: str, name: str) -> list[tuple[str, str]]:
    """(kind, name) of every child the renderer wants for the live object (same settings as the operator)."""
    md = api.get(MD, namespace, name)
    return sorted((c["kind"], c["metadata"]["name"]) for c in desired_children(md, OperatorSettings.from_env()))


def live_children(api: KubeApi, namespace: str, name: str) -> dict[tuple[str, str], dict]:
    found = {}
    for kind in child_kinds():
        if kind.optional:
            continue
        for obj in api.list(kind, namespace, f"app.kubernetes.io/instance={name}"):
            found[(kind.kind, obj["metadata"]["name"])] = obj
    return found


def children_match(api: KubeApi, namespace: str, name: str):
    want = expected_children(api, namespace, name)
    have = sorted(live_children(api, namespace, name))
    return have == want or f"want {want}, have {have}"


def md_status(api: KubeApi, namespace: str, name: str) -> dict:
    return (api.get(MD, namespace, name) or {}).get("status") or {}


def routing_table(api: KubeApi, namespace: str, name: str) -> dict:
    cm = api.get(CONFIGMAP, namespace, f"{name}-routing")
    return json.loads(cm["data"]["routing.json"]) if cm else {}


def replicasets_of(api: KubeApi, namespace: str, deployment: dict) -> list[dict]:
    uid = deployment["metadata"]["uid"]
    return [rs for rs in api.list(REPLICASET, namespace)
            if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])]


def events_for(api: KubeApi, namespace: str, name: str) -> list[dict]:
    return [e for e in api.list(EVENT, namespace)
            if (e.get("involvedObject") or {}).get("kind") == "ModelDeployment"
            and e["involvedObject"].get("name") == name]
