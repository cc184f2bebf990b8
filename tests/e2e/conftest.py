"""The one fixture that gives the e2e suite a cluster running the project's images.

``e2e_cluster`` (session scope) picks a provider (tests/e2e/providers/):

1. ``MLSERVING_E2E_PROVIDER=kind|local`` forces one; if it is not available the session FAILS
   with its reason (asking for a provider and silently skipping would hide a broken setup);
2. otherwise ``kind`` when ``docker info`` succeeds and ``kind`` and ``kubectl`` are on PATH;
3. otherwise ``local`` (the real node of hack/cluster.sh, issue 7) if it reports itself available;
4. otherwise every e2e test is skipped with the reasons of both, unless
   ``MLSERVING_REQUIRE_NODE=1``, which turns the skip into a failure.

It then starts the cluster (``provider.up()``), builds and loads both images
(``provider.load_images``) and hands out an :class:`E2ECluster`. When an e2e test fails, the
operator's logs, ``kubectl get all -A``, the events and the ModelDeployments are attached to
the failure report and written, with the provider's own node logs, under
``build/e2e-diagnostics/`` (``MLSERVING_E2E_ARTIFACTS`` moves it). The cluster is removed at the
end of the session (``provider.down()``).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import pytest
from providers.base import REPO_ROOT, ClusterProvider, ProviderError, project_images
from providers.selection import choose_provider

OPERATOR_NAMESPACE = "mlserving-system"
ARTIFACTS = pathlib.Path(os.environ.get("MLSERVING_E2E_ARTIFACTS", REPO_ROOT / "build" / "e2e-diagnostics"))

_active: E2ECluster | None = None


class KubectlError(RuntimeError):
    """kubectl failed; the message carries the command and its output."""


class E2ECluster:
    """A running cluster with the project's images loaded; everything goes through kubectl."""

    def __init__(self, provider: ClusterProvider, kubeconfig: pathlib.Path):
        self.provider = provider
        self.kubeconfig = pathlib.Path(kubeconfig)
        self.kubectl_bin = provider.kubectl()

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True) -> str:
        cmd = [self.kubectl_bin, *args]
        try:
            proc = subprocess.run(cmd, check=False, input=input, capture_output=True, text=True, timeout=timeout, env=self.env)
        except subprocess.TimeoutExpired:
            raise KubectlError(f"no answer after {timeout:.0f} s: kubectl {' '.join(args)}") from None
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr

    def get_json(self, *args: str, namespace: str | None = None) -> dict:
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", *args, *ns, "-o", "json"))

    def apply(self, obj: dict | list[dict]) -> None:
        items = obj if isinstance(obj, list) else [obj]
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def diagnostics(self) -> str:
        """Kubernetes-level state for a failure report; never raises."""
        sections = [
            ("kubectl get all -A -o wide", ["get", "all", "-A", "-o", "wide"]),
            ("kubectl get modeldeployments -A -o yaml", ["get", "modeldeployments", "-A", "-o", "yaml"]),
            ("kubectl get configmaps -A -l app.kubernetes.io/managed-by=mlserving-operator -o yaml",
             ["get", "configmaps", "-A", "-l", "app.kubernetes.io/managed-by=mlserving-operator", "-o", "yaml"]),
            ("events (last 150)", ["get", "events", "-A", "--sort-by=.lastTimestamp"]),
        ]
        out = []
        for title, args in sections:
            text = self._safe(*args)
            if title.startswith("events"):
                text = "\n".join(text.splitlines()[-150:])
            out.append(f"===== {title}\n{text}")
        out.append("===== kubectl describe pods -A -l app.kubernetes.io/name=mlserving\n"
                   + self._safe("describe", "pods", "-A", "-l", "app.kubernetes.io/name=mlserving"))
        served = self._safe("get", "pods", "-A", "-l", "app.kubernetes.io/managed-by=mlserving-operator",
                            "-o", "jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{'\\n'}{end}")
        for line in served.splitlines():
            if len(line.split()) != 2:
                continue
            ns, name = line.split()
            out.append(f"===== logs {ns}/{name} (last 100 lines)\n"
                       + self._safe("logs", "-n", ns, name, "--all-containers", "--tail=100"))
        pods = self._safe("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "name").split()
        for pod in pods:
            out.append(f"===== logs {OPERATOR_NAMESPACE}/{pod} (last 300 lines)\n"
                       + self._safe("logs", "-n", OPERATOR_NAMESPACE, pod, "--all-containers", "--tail=300"))
            out.append(f"===== previous logs {OPERATOR_NAMESPACE}/{pod}\n"
                       + self._safe("logs", "-n", OPERATOR_NAMESPACE, pod, "--all-containers", "--previous",
                                    "--tail=100"))
        return "\n".join(out)

    def _safe(self, *args: str) -> str:
        try:
            return self.kubectl(*args, timeout=60, check=False)
        except KubectlError as exc:
            return str(exc)


@pytest.fixture(scope="session")
def e2e_cluster():
    global _active
    provider, reason, forced = choose_provider()
    if provider is None:
        if forced or os.environ.get("MLSERVING_REQUIRE_NODE") == "1":
            pytest.fail(f"e2e: {reason}" + ("" if forced else " [MLSERVING_REQUIRE_NODE=1]"), pytrace=False)
        pytest.skip(f"e2e: {reason}")
    started = time.monotonic()
    try:
        kubeconfig = provider.up()
        print(f"e2e: provider {provider.name}: cluster up in {time.monotonic() - started:.0f} s")
        t = time.monotonic()
        provider.load_images(project_images())
        print(f"e2e: provider {provider.name}: images built and loaded in {time.monotonic() - t:.0f} s")
        _active = E2ECluster(provider, kubeconfig)
    except ProviderError as exc:
        _dump_provider(provider)
        provider.down()
        pytest.fail(f"e2e: provider {provider.name}: {exc}", pytrace=False)
    except BaseException:
        provider.down()  # an unexpected error (or Ctrl-C) must not leave a cluster behind
        raise
    try:
        yield _active
    finally:
        _active = None
        provider.down()


def _dump_provider(provider: ClusterProvider) -> pathlib.Path:
    out = ARTIFACTS / provider.name
    try:
        provider.dump_diagnostics(out)
    except (ProviderError, OSError, subprocess.SubprocessError) as exc:  # never hide the original failure
        out.mkdir(parents=True, exist_ok=True)
        (out / "dump_diagnostics.error").write_text(f"{type(exc).__name__}: {exc}")
    return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or _active is None or "e2e_cluster" not in item.fixturenames:
        return
    text = _active.diagnostics()
    out = _dump_provider(_active.provider)
    (out / f"{item.name}.txt").write_text(text)
    report.sections.append(("e2e diagnostics", f"(also in {out})\n{text}"))
