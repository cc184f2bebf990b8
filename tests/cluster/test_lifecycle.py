"""hack/cluster.sh up/status/env/down on a private state directory.

Runs a second, throw-away cluster next to the session one, so that stopping it cannot
disturb other tests: `up` starts every component on loopback, a second `up` reuses it,
and `down` leaves no process and no state behind.
"""

import os
import pathlib
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.cluster

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO_ROOT / "hack" / "cluster.sh"
COMPONENTS = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"}


def cluster_sh(state_dir, *args, timeout=300):
    env = dict(os.environ, MLSERVING_CLUSTER_STATE=str(state_dir))
    proc = subprocess.run(
        ["bash", str(CLUSTER_SH), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"cluster.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def pids_of(state_dir):
    lines = cluster_sh(state_dir, "pids").stdout.split("\n")
    return {name: int(pid) for name, _, pid in (line.partition(" ") for line in lines) if pid}


def is_running(pid):
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return not stat.split(") ", 1)[1].startswith("Z")


def listening_addresses(pids):
    """Local addresses of the TCP sockets the given processes listen on."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    addresses = []
    for line in out.splitlines():
        if any(re.search(rf"pid={pid}\b", line) for pid in pids):
            addresses.append(line.split()[3])
    return addresses


def test_up_reuse_down_leaves_nothing_running(cluster_binaries, tmp_path, record_property):
    state = tmp_path / "state"
    started = time.monotonic()
    try:
        cluster_sh(state, "up")
        warm_start = time.monotonic() - started
        record_property("warm_start_seconds", round(warm_start, 1))
        print(f"warm start (cached binaries) to a usable cluster: {warm_start:.1f} s")

        pids = pids_of(state)
        assert COMPONENTS <= set(pids), pids
        assert all(is_running(pid) for pid in pids.values()), pids
        addresses = listening_addresses(pids.values())
        assert addresses, "no listening sockets found for the components"
        assert all(a.startswith(("127.0.0.1:", "[::1]:")) for a in addresses), addresses

        assert "reusing" in cluster_sh(state, "up").stderr
        assert pids_of(state) == pids
        assert cluster_sh(state, "status").returncode == 0
        env = cluster_sh(state, "env").stdout
        assert f"export KUBECONFIG={state}/kubeconfig" in env
        assert f"export PATH={cluster_binaries}:" in env
    finally:
        pids = pids_of(state) if state.exists() else {}
        cluster_sh(state, "down")

    deadline = time.monotonic() + 10
    while any(is_running(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [name for name, pid in pids.items() if is_running(pid)]
    assert not state.exists()
