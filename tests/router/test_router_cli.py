"""`mlserving router` refuses bad flags with a message naming the flag, before serving anything."""

import subprocess
import sys

import pytest


def router(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlserving.cli.main", "router", *args],
                          check=False, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("args, message", [
    (["--configmap", "no-slash"], "--configmap: expected NAMESPACE/NAME, got 'no-slash'"),
    (["--configmap", "a/b/c"], "--configmap: expected NAMESPACE/NAME, got 'a/b/c'"),
    (["--config", "t.json", "--timeout", "0"], "--timeout: must be a positive number of seconds, got 0"),
    (["--config", "t.json", "--connect-timeout", "5", "--timeout", "2"],
     "--connect-timeout: must be above 0 and at most --timeout, got 5"),
    (["--config", "t.json", "--mirror-queue", "0"], "--mirror-queue: must be at least 1, got 0"),
    (["--config", "t.json", "--kubeconfig", "k"], "--kubeconfig: only used with --configmap"),
    (["--configmap", "ns/name", "--kubeconfig", "/nonexistent/kubeconfig"], "--configmap: no usable Kubernetes"),
])
def test_bad_flags_exit_2_naming_the_flag(args, message):
    result = router(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_exactly_one_table_source_is_required():
    assert router().returncode == 2
    result = router("--config", "a.json", "--configmap", "ns/n")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
