"""The local provider: one real node on this machine, no Docker engine needed.

``hack/node/up.sh`` runs etcd, kube-apiserver, controller-manager and scheduler (the binaries
hack/cluster.sh builds from the pinned k8s.io/kubernetes module), containerd + runc + the CNI
bridge from Debian's packages, kubelet, kube-proxy (iptables) and CoreDNS. Images are built from
the real Dockerfiles by ``hack/images/build-image.sh`` (buildah on a debootstrap base image) and
imported into the node's containerd. See docs/real-node.md.

Needs root and Linux, and is opt-in: it only reports itself available when ``MLSERVING_NODE=1``,
``MLSERVING_REQUIRE_NODE=1`` or ``MLSERVING_E2E_PROVIDER=local`` is set. Environment:
- ``MLSERVING_E2E_KEEP=1`` leaves the node running after the session (``hack/node/down.sh``
  stops it). A node that was already running when the session began is reused and left running.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Sequence

from providers.base import REPO_ROOT, ClusterProvider, ImageSpec, ProviderError, run_command

NODE_DIR = REPO_ROOT / "hack" / "node"
IMAGES_DIR = REPO_ROOT / "hack" / "images"
CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
NODE_BINARIES = ("kubelet", "kube-proxy")
HOST_TOOLS = ("ip", "iptables", "openssl", "gcc", "python3")
# Installed by hack/node/deps.sh through apt-get when missing.
APT_TOOLS = ("containerd", "runc", "buildah", "debootstrap", "conntrack")
UP_TIMEOUT_S = 1800         # includes first builds of CoreDNS and metrics-server from their Go modules
BUILD_TIMEOUT_S = 3600      # a cold image build: debootstrap, pip wheels, model training
DOWN_TIMEOUT_S = 300


NODE_FLAG = "MLSERVING_NODE"


def requested() -> bool:
    """Whether this run asked for the real node (it is never started implicitly)."""
    return (os.environ.get(NODE_FLAG) == "1" or os.environ.get("MLSERVING_REQUIRE_NODE") == "1"
            or os.environ.get("MLSERVING_E2E_PROVIDER", "").strip() == "local")


def node_env() -> dict[str, str]:
    """Paths of the real node (hack/node/env.sh): K8S_BIN, NODE_LOGS, KUBECONFIG, ..."""
    out = run_command(["bash", str(NODE_DIR / "env.sh")], "hack/node/env.sh", 30)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


class LocalProvider(ClusterProvider):
    name = "local"

    def __init__(self) -> None:
        self.keep = os.environ.get("MLSERVING_E2E_KEEP") == "1"
        self._reused = False
        self._started = False
        self._env: dict[str, str] | None = None

    @property
    def env(self) -> dict[str, str]:
        if self._env is None:
            self._env = node_env()
        return self._env

    def available(self) -> tuple[bool, str]:
        # Opt-in: bringing the node up installs packages, starts containerd and a kubelet as root
        # and rewrites iptables, which a plain `make test` must not do behind a developer's back.
        if not requested():
            return False, (f"real node not requested (set {NODE_FLAG}=1, MLSERVING_REQUIRE_NODE=1 or "
                           "MLSERVING_E2E_PROVIDER=local; it runs containerd, a kubelet and iptables "
                           "rules as root)")
        if os.uname().sysname != "Linux":
            return False, "the real node needs Linux"
        if os.geteuid() != 0:
            return False, "the real node needs root (containerd, kubelet, iptables, bridges)"
        problems = []
        try:
            k8s_bin = pathlib.Path(self.env["K8S_BIN"])
        except ProviderError as exc:
            return False, str(exc)
        missing = [b for b in CONTROL_PLANE_BINARIES + NODE_BINARIES if not (k8s_bin / b).exists()]
        if missing:
            problems.append(f"{', '.join(missing)} not built in {k8s_bin} (run `hack/cluster.sh build`)")
        missing_tools = [t for t in HOST_TOOLS if shutil.which(t) is None]
        if missing_tools:
            problems.append(f"{', '.join(missing_tools)} not on PATH")
        if any(shutil.which(t) is None for t in APT_TOOLS) and shutil.which("apt-get") is None:
            problems.append(f"{', '.join(APT_TOOLS)} missing and no apt-get to install them")
        if shutil.which("go") is None and not (k8s_bin / "coredns").exists():
            problems.append("no Go toolchain to build CoreDNS")
        if shutil.which("go") is None and not pathlib.Path(self.env["METRICS_SERVER_BIN"]).exists():
            problems.append("no Go toolchain to build metrics-server")
        if not pathlib.Path("/sys/fs/cgroup").is_dir():
            problems.append("/sys/fs/cgroup is not mounted")
        return (not problems), "; ".join(problems)

    def _running(self) -> bool:
        proc = subprocess.run(["bash", str(NODE_DIR / "status.sh")], check=False,
                              capture_output=True, text=True, timeout=60)
        return proc.returncode == 0

    def up(self) -> pathlib.Path:
        self._reused = self._running()
        self._started = not self._reused
        out = run_command(["bash", str(NODE_DIR / "up.sh")], "hack/node/up.sh", UP_TIMEOUT_S)
        kubeconfig = pathlib.Path(out.strip().splitlines()[-1])
        if not kubeconfig.is_file():
            raise ProviderError(f"hack/node/up.sh printed {kubeconfig}, which is not a file")
        return kubeconfig

    def load_images(self, images: Sequence[ImageSpec]) -> None:
        for image in images:
            args = ["bash", str(IMAGES_DIR / "build-image.sh"), "--tag", image.ref,
                    "--file", str(image.dockerfile), "--context", str(image.context), "--import"]
            if image.target:
                args += ["--target", image.target]
            for key, value in sorted(image.build_args.items()):
                args += ["--build-arg", f"{key}={value}"]
            run_command(args, f"building and importing {image.ref}", BUILD_TIMEOUT_S)

    def kubectl(self) -> str:
        path = pathlib.Path(self.env["K8S_BIN"]) / "kubectl"
        if not path.exists():
            raise ProviderError(f"kubectl: not built at {path}")
        return str(path)

    def dump_diagnostics(self, out_dir: pathlib.Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        logs = pathlib.Path(self.env["NODE_LOGS"])
        for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            lines = log.read_text(errors="replace").splitlines()[-2000:]
            (out_dir / log.name).write_text("\n".join(lines) + "\n")
        probes = {
            "status.txt": ["bash", str(NODE_DIR / "status.sh")],
            "images.txt": ["ctr", "--address", self.env["CONTAINERD_SOCK"], "-n", "k8s.io", "images", "ls"],
            "containers.txt": ["ctr", "--address", self.env["CONTAINERD_SOCK"], "-n", "k8s.io", "tasks", "ls"],
            "ip-addr.txt": ["ip", "addr"],
            "iptables-nat.txt": ["iptables-save", "-t", "nat"],
        }
        for name, args in probes.items():
            try:
                proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=60)
                (out_dir / name).write_text(proc.stdout + proc.stderr)
            except (OSError, subprocess.SubprocessError) as exc:
                (out_dir / name).write_text(f"{type(exc).__name__}: {exc}")

    def down(self) -> None:
        if self.keep:
            print("local provider: MLSERVING_E2E_KEEP=1, node left running (hack/node/down.sh stops it)")
            return
        if self._reused:
            print("local provider: the node was running before this session; left running")
            return
        run_command(["bash", str(NODE_DIR / "down.sh")], "hack/node/down.sh", DOWN_TIMEOUT_S)
