"""Shared fixtures: the local Kubernetes control plane (hack/cluster.sh).

Tests that need a real API server take the session-scoped ``cluster`` fixture and carry
``@pytest.mark.cluster``::

    @pytest.mark.cluster
    def test_something(cluster, k8s_namespace):
        cluster.apply(manifest_yaml, namespace=k8s_namespace)
        dep = cluster.get_json("deployment", "web", namespace=k8s_namespace)
        cluster.kubectl("wait", "--for=condition=Available", "deployment/web",
                        "-n", k8s_namespace, "--timeout=60s")

``cluster`` is a :class:`Cluster`: ``kubeconfig`` (path), ``bin_dir`` (kubectl v1.35 and the
other binaries), ``env`` (os.environ plus KUBECONFIG and PATH, for subprocesses such as an
operator under test), ``kubectl(*args)``, ``get_json(...)``, ``apply(...)``. The project's
client loads it with ``KubeApi.from_kubeconfig(str(cluster.kubeconfig))`` (mlserving.operator.kubeapi).

MLSERVING_KUBECONFIG=<path> points the fixture at an existing cluster (kind, for instance)
instead. Otherwise the fixture reuses a running cluster of this checkout and only stops one
that a test session started, after the last session using it ends. Without cached binaries
the tests skip (the reason says how to build them) unless MLSERVING_BUILD_CLUSTER=1 (build
now, about 40 minutes on 2 cores the first time) or MLSERVING_REQUIRE_CLUSTER=1 (build if Go is there,
otherwise fail).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Servers and routers started by the tests inherit this: many run at once on one machine, and each
# would otherwise bind the metrics port 9090. Tests of the metrics port pass a free port themselves.
os.environ.setdefault("METRICS_PORT", "0")
CLUSTER_SH = REPO_ROOT / "hack" / "cluster.sh"


class ClusterCommandError(RuntimeError):
    """hack/cluster.sh or kubectl failed; the message carries the command and its output."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A running control plane: kubeconfig plus the matching kubectl."""

    kubeconfig: pathlib.Path
    bin_dir: pathlib.Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl --kubeconfig <ours> *args``; text output in ``.stdout``/``.stderr``.

        With ``check=True`` a non-zero exit raises ClusterCommandError naming the command and
        its stderr; pass ``check=False`` to assert on a rejection yourself.
        """
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise ClusterCommandError(
                f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def get_json(self, *args: str, namespace: str | None = None) -> dict:
        """``kubectl get *args -o json`` parsed, e.g. ``get_json("pods", "-l", "app=web")``."""
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", *args, *ns, "-o", "json").stdout)

    def apply(self, manifest: str | dict, namespace: str | None = None) -> str:
        """``kubectl apply -f -`` a YAML string or one object dict; returns kubectl's output."""
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=text).stdout


def run_cluster_sh(*args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> str:
    """Run hack/cluster.sh; returns stdout, raises ClusterCommandError with stderr on failure."""
    proc = subprocess.run(
        ["bash", str(CLUSTER_SH), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterCommandError(
            f"hack/cluster.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def parse_env(text: str) -> dict[str, str]:
    """The KUBECONFIG and PATH that ``hack/cluster.sh env`` exports."""
    values = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    return values


def component_pids(env: dict[str, str] | None = None) -> dict[str, int]:
    """``{component: pid}`` of what the cluster in the given state directory runs."""
    pids = {}
    for line in run_cluster_sh("pids", env=env).splitlines():
        name, _, pid = line.partition(" ")
        if pid.strip().isdigit():
            pids[name] = int(pid)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    with contextlib.suppress(OSError):
        if pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def unavailable_reason() -> str | None:
    """Why the cluster cannot start without a long build, or None when it can."""
    missing = run_cluster_sh("missing").split()
    if not missing:
        return None
    if shutil.which("go") is None:
        return (
            f"Kubernetes binaries missing ({', '.join(missing)}) and Go is not installed: install "
            "Go >= 1.25 and run `hack/cluster.sh build` (KUBEBUILDER_ASSETS may point at "
            "setup-envtest binaries for etcd, kube-apiserver and kubectl)"
        )
    return (
        f"Kubernetes binaries not built yet ({', '.join(missing)}): run `hack/cluster.sh build` "
        "(about 40 min of Go builds on 2 cores the first time), or set MLSERVING_BUILD_CLUSTER=1"
    )


class SessionRegistry:
    """Which pytest sessions use the checkout's cluster, so the last one out stops it.

    A cluster that a person started with ``hack/cluster.sh up`` (no ``started-by-pytest``
    marker) is never stopped by the tests.
    """

    def __init__(self, state_dir: pathlib.Path):
        self.dir = state_dir / "pytest-sessions"
        self.marker = state_dir / "started-by-pytest"
        digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
        self.lock_path = pathlib.Path(tempfile.gettempdir()) / f"mlserving-pytest-sessions-{digest}.lock"
        self.me = self.dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def register(self, started_here: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.me.write_text("")
        if started_here:
            self.marker.write_text(str(os.getpid()))

    def unregister(self) -> bool:
        """Drop this session; True when the cluster should now be stopped."""
        self.me.unlink(missing_ok=True)
        others = [p for p in self.dir.glob("*") if alive(int(p.name.split("-")[0]))]
        if others:
            return False
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.marker.exists()


@pytest.fixture(scope="session")
def cluster_binaries() -> pathlib.Path:
    """The cache directory holding the control-plane binaries; skips or fails if unavailable.

    Builds them first when MLSERVING_BUILD_CLUSTER=1 or MLSERVING_REQUIRE_CLUSTER=1 and Go exists.
    """
    if not CLUSTER_SH.exists():
        pytest.fail(f"{CLUSTER_SH} is missing")
    reason = unavailable_reason()
    if reason:
        if not (env_flag("MLSERVING_REQUIRE_CLUSTER") or env_flag("MLSERVING_BUILD_CLUSTER")):
            pytest.skip(reason)
        if shutil.which("go") is None:
            pytest.fail(f"MLSERVING_REQUIRE_CLUSTER=1 but {reason}")
        run_cluster_sh("build", timeout=7200)
    return pathlib.Path(parse_env(run_cluster_sh("env"))["PATH"].split(os.pathsep)[0])


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The local control plane, started once per session (see the module docstring).

    MLSERVING_KUBECONFIG=<path> uses that cluster instead (kind, for instance), with the
    kubectl found on PATH, and never stops it.
    """
    external = os.environ.get("MLSERVING_KUBECONFIG")
    if external:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.fail("MLSERVING_KUBECONFIG is set but no kubectl is on PATH")
        yield Cluster(kubeconfig=pathlib.Path(external), bin_dir=pathlib.Path(kubectl).parent)
        return
    cluster_binaries = request.getfixturevalue("cluster_binaries")
    env = parse_env(run_cluster_sh("env"))
    kubeconfig = pathlib.Path(env["KUBECONFIG"])
    registry = SessionRegistry(kubeconfig.parent)
    with registry.locked():
        already_running = (
            subprocess.run(["bash", str(CLUSTER_SH), "status"], capture_output=True, check=False).returncode
            == 0
        )
        if not already_running:
            run_cluster_sh("up")
        registry.register(started_here=not already_running)

    yield Cluster(kubeconfig=kubeconfig, bin_dir=cluster_binaries)

    with registry.locked():
        if not registry.unregister():
            return
        pids = component_pids()
        run_cluster_sh("down")
    left = {name: pid for name, pid in pids.items() if alive(pid)}
    if left:
        pytest.fail(f"hack/cluster.sh down left processes running: {left}")


@pytest.fixture
def k8s_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


HELM_SH = REPO_ROOT / "hack" / "helm.sh"


@pytest.fixture(scope="session")
def helm() -> pathlib.Path:
    """The helm binary hack/helm.sh builds from its Go module; skips without it.

    MLSERVING_REQUIRE_HELM=1 builds it when Go exists (a few minutes the first time) and fails
    otherwise; MLSERVING_HELM=<path> uses that binary instead.
    """
    given = os.environ.get("MLSERVING_HELM")
    path = pathlib.Path(given) if given else pathlib.Path(
        subprocess.run(["bash", str(HELM_SH), "path"], capture_output=True, text=True, check=True).stdout.strip())
    if os.access(path, os.X_OK):
        return path
    reason = f"helm not built ({path}): run `hack/helm.sh build`"
    if not env_flag("MLSERVING_REQUIRE_HELM"):
        pytest.skip(reason)
    if given or shutil.which("go") is None:
        pytest.fail(f"MLSERVING_REQUIRE_HELM=1 but {reason}" + ("" if given else " (needs Go)"))
    proc = subprocess.run(["bash", str(HELM_SH), "build"], capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"MLSERVING_REQUIRE_HELM=1 and hack/helm.sh build failed:\n{proc.stderr[-4000:]}")
    return path


pytest_plugins = ["suite_times"]
