"""`make demo`'s script, end to end on the local control plane (the no-Docker path).

Runs ``bash hack/demo.sh`` with a fresh model registry, a namespace of its own and fewer requests,
and reads its output: the ModelDeployment Ready, a prediction through the router whose version
header matches its variant, both variants in the observed split near the weights, sticky users,
and every process it started gone afterwards.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import uuid

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REQUESTS = 400
# 90/10 over 400 draws: one standard deviation of the observed share is 1.5 points.
SPLIT_TOLERANCE_POINTS = 8


def alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie counts as gone)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return not stat.split(") ", 1)[1].startswith("Z")


def kind_available() -> bool:
    return (
        subprocess.run(
            ["bash", str(REPO_ROOT / "hack/demo-kind.sh"), "available"], capture_output=True, check=False
        ).returncode
        == 0
    )


def test_make_demo_local_path(cluster, tmp_path):
    if os.environ.get("MLSERVING_KUBECONFIG"):
        pytest.skip(
            "MLSERVING_KUBECONFIG points at another cluster; the demo's local path always uses "
            "hack/cluster.sh's control plane"
        )
    namespace = f"t-demo-{uuid.uuid4().hex[:6]}"
    env = dict(
        os.environ,
        MODELS=str(tmp_path / "models"),
        SAMPLES="1000",
        DEMO_REQUESTS=str(REQUESTS),
        DEMO_NAMESPACE=namespace,
        DEMO_KEEP="0",
    )
    env.pop("KUBECONFIG", None)
    env.pop("METRICS_PORT", None)  # as a newcomer runs it: every process with its default metrics port
    with_kind = kind_available()
    if with_kind:  # this test is about the local path; the kind path is tests/e2e's
        env["MLSERVING_DEMO"] = "local"
    else:
        env.pop("MLSERVING_DEMO", None)

    proc = subprocess.run(
        ["bash", "hack/demo.sh"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"hack/demo.sh exited {proc.returncode}:\n{out[-6000:]}"

    if not with_kind:
        assert "demo: not using kind: kind demo unavailable:" in out, out[:2000]
    assert (tmp_path / "models/fraud/1.0.0/metadata.json").exists()
    assert (tmp_path / "models/fraud/2.0.0/metadata.json").exists()
    # Every step says where it ran.
    assert len(re.findall(r"^==> \[\d+\] .+\n    where: .+$", out, re.MULTILINE)) >= 6, out

    assert re.search(
        r"^\s+fraud\s+True\s+Ready\s+stable=1\.0\.0:90% candidate=2\.0\.0:10%", out, re.MULTILINE
    ), out

    first = re.search(r"HTTP (\d+)  x-mlserving-variant: (\w+)  x-model-version: (\S+)\n\s+(\{.*\})", out)
    assert first, out
    status, variant, version, body = first.groups()
    assert status == "200"
    assert {"stable": "1.0.0", "candidate": "2.0.0"}[variant] == version
    assert f'"model_version":"{version}"' in body and '"request_id":"demo-0001"' in body

    assert f"observed split over {REQUESTS} requests" in out, out
    split = {
        name: (int(weight), float(share), int(count))
        for name, weight, share, count in re.findall(
            r"^\s+(\w+)\s+version \S+\s+weight\s+(\d+)%\s+observed\s+([\d.]+)%\s+\((\d+) requests\)",
            out,
            re.MULTILINE,
        )
    }
    assert set(split) == {"stable", "candidate"}, out
    assert sum(count for _, _, count in split.values()) == REQUESTS
    for name, (weight, share, count) in split.items():
        assert count > 0, f"{name} got no request"  # both versions answered
        assert abs(share - weight) <= SPLIT_TOLERANCE_POINTS, f"{name}: {share}% observed, weight {weight}%"

    sticky = re.findall(r"^\s+x-user-id: (\S+)\s+-> (.+)$", out, re.MULTILINE)
    assert len(sticky) >= 2, out
    for user, variants in sticky:
        assert len(set(variants.split(", "))) == 1, f"{user}: {variants}"
    assert {variants.split(", ")[0] for _, variants in sticky} == {"stable", "candidate"}

    stopped = re.search(r"stopped the local processes \(pids ([\d ]+)\)", out)
    assert stopped, out
    pids = [int(p) for p in stopped.group(1).split()]
    assert len(pids) == 4  # operator, two servers, router
    assert not [p for p in pids if alive(p)]
    assert f"deleted namespace {namespace}" in out
    assert "local control plane left running: it was running before the demo" in out
