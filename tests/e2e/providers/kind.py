"""The kind provider: a one-node kind cluster from tests/e2e/kind.yaml, images built with Docker.

Runs where ``docker info`` succeeds (a Docker client alone answers ``--version`` without any
engine, so that probe proves nothing) and ``kind`` and ``kubectl`` are on PATH: a laptop with
Docker, or a GitHub Actions runner (.github/workflows/ci.yml, job e2e).

Environment:
- ``MLSERVING_E2E_CLUSTER`` names the cluster (default ``mlserving-e2e``);
- ``MLSERVING_E2E_KEEP=1`` leaves the cluster running after the session (for debugging).
  An existing cluster of that name is reused and left running; one this session created is
  deleted at the end.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

from providers.base import REPO_ROOT, ClusterProvider, ImageSpec, ProviderError, run_command

KIND_CONFIG = REPO_ROOT / "tests" / "e2e" / "kind.yaml"
BUILD_TIMEOUT_S = 1800
CREATE_TIMEOUT_S = 600


class KindProvider(ClusterProvider):
    name = "kind"

    def __init__(self) -> None:
        self.cluster = os.environ.get("MLSERVING_E2E_CLUSTER", "mlserving-e2e")
        self.keep = os.environ.get("MLSERVING_E2E_KEEP") == "1"
        self._workdir = pathlib.Path(tempfile.mkdtemp(prefix="mlserving-kind-"))
        self.kubeconfig = self._workdir / "kubeconfig"
        self._created = False

    def available(self) -> tuple[bool, str]:
        problems = [f"{tool} not on PATH" for tool in ("kind", "kubectl") if shutil.which(tool) is None]
        if shutil.which("docker") is None:
            problems.insert(0, "docker not on PATH")
        else:
            try:
                proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                      check=False, capture_output=True, text=True, timeout=20)
            except subprocess.TimeoutExpired:
                problems.insert(0, "`docker info` did not answer within 20 s")
            else:
                if proc.returncode != 0 or not proc.stdout.strip():
                    why = (proc.stderr.strip().splitlines() or ["no server version"])[-1]
                    problems.insert(0, f"`docker info` found no Docker engine ({why})")
        return (not problems), ", ".join(problems)

    def _exists(self) -> bool:
        out = run_command(["kind", "get", "clusters"], "kind get clusters", 60)
        return self.cluster in out.split()

    def up(self) -> pathlib.Path:
        if not self._exists():
            run_command(["kind", "create", "cluster", "--name", self.cluster, "--config", str(KIND_CONFIG),
                  "--wait", "300s", "--kubeconfig", str(self.kubeconfig)],
                 "kind create cluster", CREATE_TIMEOUT_S)
            self._created = True
        else:
            self.kubeconfig.write_text(run_command(["kind", "get", "kubeconfig", "--name", self.cluster],
                                            "kind get kubeconfig", 60))
        run_command([self.kubectl(), "--kubeconfig", str(self.kubeconfig), "wait", "--for=condition=Ready",
              "node", "--all", "--timeout=300s"], "waiting for the kind node to be Ready", 320)
        return self.kubeconfig

    def load_images(self, images: Sequence[ImageSpec]) -> None:
        for image in images:
            args = ["docker", "build", "--file", str(image.dockerfile), "--tag", image.ref]
            if image.target:
                args += ["--target", image.target]
            for key, value in sorted(image.build_args.items()):
                args += ["--build-arg", f"{key}={value}"]
            run_command(args + [str(image.context)], f"docker build of {image.ref}", BUILD_TIMEOUT_S)
        run_command(["kind", "load", "docker-image", "--name", self.cluster, *[i.ref for i in images]],
             "kind load docker-image", 900)

    def dump_diagnostics(self, out_dir: pathlib.Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Node-level logs: kubelet, containerd, the control plane's containers.
        try:
            run_command(["kind", "export", "logs", str(out_dir / "kind-logs"), "--name", self.cluster],
                 "kind export logs", 300)
        except ProviderError as exc:
            (out_dir / "kind-export-logs.error").write_text(str(exc))

    def down(self) -> None:
        if self.keep:
            print(f"kind provider: MLSERVING_E2E_KEEP=1, cluster {self.cluster} left running "
                  f"(kind delete cluster --name {self.cluster})")
            return
        if not self._created:
            print(f"kind provider: cluster {self.cluster} existed before this session; left running")
        elif shutil.which("kind") is not None and self._exists():
            run_command(["kind", "delete", "cluster", "--name", self.cluster], "kind delete cluster", 300)
        shutil.rmtree(self._workdir, ignore_errors=True)
