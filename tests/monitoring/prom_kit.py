"""What the Prometheus tests share: the one skip-or-fail rule for missing Prometheus binaries,
the binaries themselves, queries through the HTTP API and the dashboard's expressions.

Without a binary the tests that need it skip with how to get it, unless
MLSERVING_REQUIRE_PROMETHEUS=1 (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "monitoring" / "dashboards" / "mlserving.json"
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-prometheus.sh"


def missing(reason: str):
    """Skips the test with the reason, or fails it when MLSERVING_REQUIRE_PROMETHEUS is set."""
    if os.environ.get("MLSERVING_REQUIRE_PROMETHEUS", "") not in ("", "0", "false", "no"):
        pytest.fail(f"MLSERVING_REQUIRE_PROMETHEUS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """prometheus or promtool from PATH (Debian's package, hack/install-prometheus.sh)."""
    path = shutil.which(name)
    if path:
        return path
    missing(f"{name} not found: run hack/install-prometheus.sh (Debian's prometheus package)")


def kubernetes_prometheus() -> str:
    """The Prometheus built with Kubernetes service discovery (hack/build-prometheus.sh, cached);
    Debian's package lacks that discovery. Never builds: the build takes minutes."""
    script = subprocess.run(["bash", str(BUILD_SCRIPT), "--path"], capture_output=True, text=True, check=False)
    target = script.stdout.strip()
    if target and os.access(target, os.X_OK):
        return target
    missing(f"no Prometheus with Kubernetes service discovery at {target or '(unknown path)'}: "
            "run hack/build-prometheus.sh (a Go build of several minutes)")


def query(prom: str, expr: str, at: float | None = None) -> list[dict]:
    params = {"query": expr} if at is None else {"query": expr, "time": at}
    answer = httpx.get(f"{prom}/api/v1/query", params=params, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def dashboard_queries(*, namespace: str, model_deployment: str, variants: str, window: str) -> list[str]:
    """Every panel target's expression, with the dashboard's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    subst = {"$namespace": namespace, "$model_deployment": model_deployment, "$variant": variants,
             "$__rate_interval": window}
    for key, value in subst.items():
        exprs = [e.replace(key, value) for e in exprs]
    return exprs
