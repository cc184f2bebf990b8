"""The contract between the e2e suite and "a cluster that can run our images".

The suite never talks to Docker, kind, containerd or buildah itself: one fixture
(tests/e2e/conftest.py) picks a provider, asks it for a cluster and for the project's two
images inside that cluster, and from then on only uses ``kubectl`` with the kubeconfig the
provider returned. A provider is one way of getting such a cluster:

- ``kind`` (tests/e2e/providers/kind.py): Docker + kind, on a laptop or a CI runner;
- ``local`` (tests/e2e/providers/local.py): a real kubelet + containerd node on this machine,
  images built with buildah from the same Dockerfiles (no Docker engine needed).

Lifecycle, in the order the fixture calls it::

    ok, reason = provider.available()   # cheap, no side effects; reason says what is missing
    kubeconfig = provider.up()          # a cluster ready for pods; returns its kubeconfig path
    provider.load_images(project_images())
    ...tests run...
    provider.dump_diagnostics(out_dir)  # only when a test failed
    provider.down()                     # always; removes what up() made (unless kept)
"""

from __future__ import annotations

import abc
import dataclasses
import pathlib
import shutil
import subprocess
import tomllib
from collections.abc import Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]

# The registry/repository part of the image references deploy/ and the operator default to.
SERVER_REPOSITORY = "docker.io/mlserving/server"
SERVER_FULL_REPOSITORY = "docker.io/mlserving/server-full"
OPERATOR_REPOSITORY = "docker.io/mlserving/operator"


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """One image the cluster must be able to run, and how to build it from this repository.

    ``ref`` is the fully qualified reference the manifests use; after ``load_images`` the
    node's container runtime must resolve it locally (manifests use imagePullPolicy
    IfNotPresent, and nothing is pushed to any registry).
    """

    ref: str
    dockerfile: pathlib.Path
    context: pathlib.Path = REPO_ROOT
    build_args: dict[str, str] = dataclasses.field(default_factory=dict)
    target: str | None = None  # a Dockerfile stage; None = its last one


def project_version(root: pathlib.Path = REPO_ROOT) -> str:
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def project_images(root: pathlib.Path = REPO_ROOT) -> list[ImageSpec]:
    """The server and operator images, tagged with the project version as deploy/ expects."""
    version = project_version(root)
    return [
        ImageSpec(f"{SERVER_REPOSITORY}:{version}", root / "Dockerfile.server", root),
        ImageSpec(f"{OPERATOR_REPOSITORY}:{version}", root / "Dockerfile.operator", root),
    ]


def server_full_image(root: pathlib.Path = REPO_ROOT) -> ImageSpec:
    """The server-full target (native runtimes), for a test that sets spec.image to it."""
    return ImageSpec(f"{SERVER_FULL_REPOSITORY}:{project_version(root)}", root / "Dockerfile.server", root,
                     target="server-full")


class ProviderError(RuntimeError):
    """A provider step failed; the message says which step and carries the tool's output."""


def run_command(args: list[str], what: str, timeout: float, env: dict | None = None) -> str:
    """Run one step of a provider; its stdout, or ProviderError naming ``what`` with the output's tail."""
    try:
        proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError as exc:
        raise ProviderError(f"{what}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise ProviderError(f"{what}: not done after {timeout:.0f} s: {' '.join(args)}") from None
    if proc.returncode != 0:
        raise ProviderError(f"{what} failed (exit {proc.returncode}): {' '.join(args)}\n"
                            f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout


class ClusterProvider(abc.ABC):
    """A way of getting a Kubernetes cluster whose node runs the project's images."""

    #: short name, also the value of MLSERVING_E2E_PROVIDER that forces this provider
    name: str = ""

    @abc.abstractmethod
    def available(self) -> tuple[bool, str]:
        """Whether this provider can run here: ``(True, "")`` or ``(False, reason)``.

        Cheap and free of side effects (it may run ``--version``-style probes); the reason is
        shown as the skip reason, so it names the missing tool or the failing probe.
        """

    @abc.abstractmethod
    def up(self) -> pathlib.Path:
        """Create (or reuse) the cluster and wait until a node is Ready to run pods.

        Returns the path of a kubeconfig whose current context is that cluster. Raises
        ProviderError naming the step that failed.
        """

    @abc.abstractmethod
    def load_images(self, images: Sequence[ImageSpec]) -> None:
        """Build each image from its Dockerfile and make it resolvable by the node under ``ref``.

        A provider may skip a rebuild when the inputs have not changed. ``build_args`` are
        passed through; a provider may add its own (the local provider sets BASE_IMAGE to a
        locally built base). Raises ProviderError with the build or load output.
        """

    @abc.abstractmethod
    def dump_diagnostics(self, out_dir: pathlib.Path) -> None:
        """Write provider-level diagnostics (node/runtime logs) under ``out_dir``.

        Called only after a failure, with the cluster still up. Kubernetes-level diagnostics
        (operator logs, ``kubectl get all``) are collected by the suite itself.
        """

    def kubectl(self) -> str:
        """The kubectl binary to drive this cluster with (default: the one on PATH)."""
        found = shutil.which("kubectl")
        if found is None:
            raise ProviderError("kubectl: not found on PATH")
        return found

    @abc.abstractmethod
    def down(self) -> None:
        """Remove what ``up`` created. Safe to call twice or after a failed ``up``."""
