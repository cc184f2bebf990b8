"""Bearer-token auth, the per-pod rate limit and HTTPS in the router process (127.0.0.1, a stand-in
upstream), and the pieces on their own."""

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from mlserving.server.router.security import RateLimit, TokenAuth
from router_testkit import Process, free_port, http_get, metric_value, start_fake, variant, write_table

BODY = b'{"features": [1, 2, 3]}'


@pytest.fixture(scope="module")
def fake(logs):
    proc = start_fake("secure", logs)
    yield proc
    proc.stop()


def start(fake, logs, tmp_path, *flags, scheme="http", ready_check=None) -> Process:
    table = tmp_path / "routing.json"
    write_table(table, [variant("only", "1.0.0", fake.url, 100)])
    port, metrics_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "mlserving.cli.main", "router", "--config", str(table), "--host", "127.0.0.1",
           "--port", str(port), "--metrics-port", str(metrics_port), *flags]
    proc = Process("router", cmd, port, logs)
    proc.metrics_port = metrics_port  # plain HTTP, no token: what Prometheus scrapes
    if scheme == "http":
        return proc.start(ready_path="/health/live")
    with open(proc.log_path, "ab") as log:
        proc.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if ready_check(port):
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.stop()
    raise AssertionError(f"router not serving HTTPS:\n{proc.log()}")


def post(url: str, token: str | None = None, headers=None, context=None) -> tuple[int, dict, bytes]:
    import urllib.error
    import urllib.request

    h = {"content-type": "application/json", **(headers or {})}
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + "/predict", data=BODY, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# -- pieces --------------------------------------------------------------------------------------
def test_token_auth_reads_visible_files_and_compares_each(tmp_path):
    (tmp_path / "a").write_text("alpha\n")
    (tmp_path / ".hidden").write_text("hidden")
    (tmp_path / "empty").write_text("")
    auth = TokenAuth(tmp_path)
    auth.reload()
    assert auth.tokens == (b"alpha",)
    assert auth.refusal(b"alpha") is None
    assert auth.refusal(b"hidden") == "invalid" and auth.refusal(None) == "missing"
    assert TokenAuth(tmp_path / "nope").refusal(b"alpha") == "not_configured"


def test_token_bucket_allows_burst_then_rate_per_key():
    limit = RateLimit(rps=10, burst=5, key="client")
    now = 100.0
    assert [limit.wait_for(b"a", now) for _ in range(6)] == [0, 0, 0, 0, 0, pytest.approx(0.1)]
    assert limit.wait_for(b"b", now) == 0  # another key has its own bucket
    assert limit.wait_for(b"a", now + 0.1) == 0 and limit.wait_for(b"a", now + 0.1) > 0


# -- auth ----------------------------------------------------------------------------------------
def test_auth_refuses_without_a_valid_token_and_revokes_a_removed_key(fake, logs, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "client-a").write_text("token-a")
    (tokens / "client-b").write_text("token-b\n")
    router = start(fake, logs, tmp_path, "--auth-tokens-dir", str(tokens))
    try:
        for token in (None, "wrong"):
            status, headers, body = post(router.url, token)
            assert status == 401 and headers["www-authenticate"].startswith("Bearer")
            assert "auth" in json.loads(body)["error"]
        assert post(router.url, "token-a")[0] == 200 and post(router.url, "token-b")[0] == 200
        assert http_get(router.url + "/health/ready")[0] == 200  # health stays open
        (tokens / "client-b").unlink()
        deadline = time.monotonic() + 10
        while post(router.url, "token-b")[0] != 401:
            assert time.monotonic() < deadline, "removed token still accepted"
            time.sleep(0.2)
        assert post(router.url, "token-a")[0] == 200
        (tokens / "client-a").unlink()
        time.sleep(2.5)
        status, _, body = post(router.url, "token-a")
        assert status == 503 and "no valid token" in json.loads(body)["error"]
        counted = http_get(f"http://127.0.0.1:{router.metrics_port}/metrics")[1].decode()
        assert metric_value(counted, "mlserving_router_auth_refused_total", reason="invalid") >= 2
    finally:
        router.stop()


# -- rate limit ----------------------------------------------------------------------------------
async def paced(url: str, rps: float, seconds: float, user: str) -> list[tuple[float, int, dict, bytes]]:
    """Requests at ``rps`` for ``seconds`` (sticky header ``user``); (sent_at, status, headers, body) each."""
    out = []
    start = time.monotonic()
    headers = {"content-type": "application/json", "x-user-id": user}
    async with aiohttp.ClientSession() as session:
        async def one(at):
            async with session.post(url + "/predict", data=BODY, headers=headers) as resp:
                out.append((at, resp.status, dict(resp.headers), await resp.read()))

        tasks = []
        i = 0
        while (at := i / rps) < seconds:
            delay = start + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(at)))
            i += 1
        await asyncio.gather(*tasks)
    return out


def test_over_limit_client_gets_429_and_another_keeps_its_full_rate(fake, logs, tmp_path):
    rate, burst, seconds = 20.0, 10, 20.0
    router = start(fake, logs, tmp_path, "--rate-limit-rps", str(rate), "--rate-limit-burst", str(burst),
                   "--rate-limit-key", "header")

    async def both():
        return await asyncio.gather(paced(router.url, 3 * rate, seconds, "greedy"),
                                    paced(router.url, rate / 2, seconds, "polite"))

    try:
        greedy, polite = asyncio.run(both())
        counted = http_get(f"http://127.0.0.1:{router.metrics_port}/metrics")[1].decode()
    finally:
        router.stop()
    assert {status for _, status, _, _ in polite} == {200}, "the client under its limit was limited"
    refused = [(h, b) for _, status, h, b in greedy if status == 429]
    assert refused
    headers, body = refused[0]
    assert int(headers["Retry-After"]) >= 1
    assert json.loads(body)["limit"] == {"requestsPerSecond": rate, "burst": burst, "key": "header"}
    accepted = sum(1 for _, status, _, _ in greedy if status == 200)
    assert abs((accepted - burst) / seconds - rate) <= 0.1 * rate, f"{accepted} accepted in {seconds} s"
    assert metric_value(counted, "mlserving_router_rate_limited_total", key="header") == len(refused)


# -- TLS -----------------------------------------------------------------------------------------
def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=mlserving test CA", cwd=directory)


def issue(directory: Path, out: Path, serial: int) -> None:
    """A certificate for 127.0.0.1 signed by the test CA, written as tls.crt/tls.key into ``out``
    with one rename each, as the kubelet's atomic update does."""
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "new.key", "-out", "new.csr",
            "-subj", "/CN=127.0.0.1", cwd=directory)
    openssl("x509", "-req", "-in", "new.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", str(serial),
            "-days", "2", "-extfile", "san.ext", "-out", "new.crt", cwd=directory)
    staging = out.parent / f".staging-{serial}"
    staging.mkdir()
    shutil.copy(directory / "new.crt", staging / "tls.crt")
    shutil.copy(directory / "new.key", staging / "tls.key")
    link = out.parent / f".link-{serial}"
    link.symlink_to(staging.name)
    if not out.is_symlink():
        out.symlink_to(link.name)
    else:
        tmp = out.parent / ".out-tmp"
        tmp.symlink_to(link.name)
        tmp.replace(out)


def served_serial(port: int, context: ssl.SSLContext) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return int(tls.getpeercert()["serialNumber"], 16)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test CA")
def test_https_with_the_test_ca_and_a_renewed_certificate_is_served(fake, logs, tmp_path):
    work = tmp_path / "ca"
    work.mkdir()
    make_ca(work)
    tls_dir = tmp_path / "tls"
    issue(work, tls_dir, serial=1001)
    context = ssl.create_default_context(cafile=str(work / "ca.crt"))
    router = start(fake, logs, tmp_path, "--tls-dir", str(tls_dir), scheme="https",
                   ready_check=lambda port: served_serial(port, context) == 1001)
    try:
        status, headers, _ = post(f"https://127.0.0.1:{router.port}", context=context)
        assert status == 200 and headers["x-mlserving-variant"] == "only"
        issue(work, tls_dir, serial=1002)
        deadline = time.monotonic() + 10
        while served_serial(router.port, context) != 1002:
            assert time.monotonic() < deadline, "renewed certificate not served"
            time.sleep(0.2)
        assert post(f"https://127.0.0.1:{router.port}", context=context)[0] == 200
    finally:
        router.stop()
