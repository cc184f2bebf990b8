"""Waiting for a CustomResourceDefinition to be usable, for every suite that installs one.

``kubectl wait --for=condition=Established`` is not enough on a busy API server: a CRD created a
moment ago may have no status yet (the wait then errors instead of waiting), and the OpenAPI
schema that ``kubectl explain`` reads is published a little after Established.
"""

from __future__ import annotations

import time

MODEL_DEPLOYMENTS = "modeldeployments.mlserving.io"


def wait_crd_served(kube, crd: str = MODEL_DEPLOYMENTS, timeout: float = 90) -> None:
    """Block until ``crd`` is Established and ``kubectl explain`` knows its resource.

    ``kube``: any of the suites' cluster handles; each one's ``kubectl`` raises on a non-zero exit
    (they differ in what they return and raise, so this only relies on that)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kube.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=10s", timeout=30)
            kube.kubectl("explain", crd, timeout=30)
            return
        except (RuntimeError, AssertionError) as exc:  # ClusterCommandError and KubectlError; the node's
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {crd} not served within {timeout} s: {exc}") from None
        time.sleep(1)
