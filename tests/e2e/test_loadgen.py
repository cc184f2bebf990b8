"""The e2e load generator against a real HTTP server on 127.0.0.1 (no cluster needed).

The stand-in upstream answers like the router does: ``x-mlserving-variant`` and
``x-model-version`` headers and a body carrying ``model_version``; every 10th request is the
candidate, and with ``fail_every`` it answers 503 on every n-th request.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import subprocess
import sys
import threading
import time

import loadgen
import pytest

LOADGEN = pathlib.Path(loadgen.__file__)


class StandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fail_every: int = 0):
        super().__init__(("127.0.0.1", 0), Handler)
        self.fail_every = fail_every
        self.count = 0
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        with self.server.lock:
            self.server.count += 1
            n = self.server.count
        if self.server.fail_every and n % self.server.fail_every == 0:
            self._send(503, {"error": "stand-in failure"}, {})
            return
        variant, version = ("candidate", "2.0.0") if n % 10 == 0 else ("stable", "1.0.0")
        self._send(200, {"model_version": version, "is_fraud": False},
                   {"x-mlserving-variant": variant, "x-model-version": version})

    def _send(self, status, body, headers):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in {**headers, "content-type": "application/json", "content-length": str(len(data))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in(request):
    server = StandIn(getattr(request, "param", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_loadgen(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(LOADGEN), "--url", url, "--payload", '{"features": [0]}', *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def url_of(server: StandIn) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/predict"


def test_counts_variants_and_versions(stand_in):
    proc = run_loadgen(url_of(stand_in), "--requests", "200", "--duration", "30", "--rate", "400")
    assert proc.returncode == 0, proc.stderr
    assert "LOADGEN_STARTED " in proc.stdout
    result = loadgen.parse_result(proc.stdout)
    assert (result["requests"], result["ok"], result["failed"]) == (200, 200, 0)
    assert result["by_variant"] == {"stable": 180, "candidate": 20}
    assert sorted(result["answers"]) == [["candidate", "2.0.0", "2.0.0", 20], ["stable", "1.0.0", "1.0.0", 180]]
    assert sum(n for *_, n in result["timeline"]) == 200
    fraction, total = loadgen.share(result, "candidate")
    assert (fraction, total) == (0.1, 200)
    assert stand_in.count == 200


@pytest.mark.parametrize("stand_in", [5], indirect=True)
def test_counts_failures_with_their_errors(stand_in):
    proc = run_loadgen(url_of(stand_in), "--requests", "100", "--duration", "30", "--rate", "400")
    result = loadgen.parse_result(proc.stdout)
    assert (result["requests"], result["failed"]) == (100, 20)
    assert all(e["error"].startswith("HTTP 503") for e in result["errors"])
    assert sum(n for _, name, _, n in result["timeline"] if name == "FAILED") == 20
    # failures do not count towards any variant's share
    assert loadgen.share(result, "stable")[1] == 80


@pytest.mark.parametrize("stand_in", [4], indirect=True)
def test_progress_lines_add_up_to_the_result(stand_in):
    proc = run_loadgen(url_of(stand_in), "--requests", "60", "--duration", "30", "--rate", "40", "--progress")
    result = loadgen.parse_result(proc.stdout)
    seconds = loadgen.parse_seconds(proc.stdout)
    assert sum(s["ok"] for s in seconds.values()) == result["ok"] == 45
    assert sum(s["failed"] for s in seconds.values()) == result["failed"] == 15
    assert all(e.startswith("HTTP 503") for s in seconds.values() for e in s["errors"])
    assert len(seconds) == len({t for t, *_ in result["timeline"]})  # each second printed once


def test_unreachable_upstream_is_a_failure_not_a_crash():
    proc = run_loadgen("http://127.0.0.1:9/predict", "--requests", "3", "--duration", "10", "--rate", "100",
                       "--concurrency", "1", "--timeout", "2")
    result = loadgen.parse_result(proc.stdout)
    assert (result["ok"], result["failed"]) == (0, 3)
    assert "ConnectError" in result["errors"][0]["error"]


def test_duration_and_rate_bound_the_load(stand_in):
    start = time.monotonic()
    proc = run_loadgen(url_of(stand_in), "--duration", "1.5", "--rate", "20")
    elapsed = time.monotonic() - start
    result = loadgen.parse_result(proc.stdout)
    # paced at 20/s for 1.5 s: at most 30 requests (+2 in flight), never the thousands an unpaced
    # loop would send; a busy machine may send fewer.
    assert 1 <= result["requests"] <= 32
    assert elapsed < 60


def test_stop_file_ends_the_load_before_its_duration(stand_in, tmp_path):
    stop = tmp_path / "stop"
    proc = subprocess.Popen([sys.executable, str(LOADGEN), "--url", url_of(stand_in), "--payload", '{"features": [0]}',
                             "--duration", "120", "--rate", "50", "--stop-file", str(stop)],
                            stdout=subprocess.PIPE, text=True)
    try:
        started = proc.stdout.readline()
        assert started.startswith("LOADGEN_STARTED "), started
        stop.touch()
        out, _ = proc.communicate(timeout=60)  # far less than the 120 s it was given
    finally:
        proc.kill()
    result = loadgen.parse_result(out)
    assert result["ok"] >= 1 and result["failed"] == 0
    assert result["finished"] - result["started"] < 60


@pytest.mark.parametrize("args, field", [
    (["--duration", "0"], "--duration"),
    (["--duration", "5", "--rate", "0"], "--rate"),
    (["--duration", "5", "--concurrency", "100"], "--concurrency"),
])
def test_bad_arguments_name_the_option(args, field):
    proc = run_loadgen("http://127.0.0.1:9/predict", *args)
    assert proc.returncode == 2
    assert field in proc.stderr


def test_parse_result_says_when_the_log_has_no_result():
    with pytest.raises(ValueError, match="no LOADGEN_RESULT"):
        loadgen.parse_result("Traceback (most recent call last): ...")
