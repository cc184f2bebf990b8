"""schemathesis against both OpenAPI documents: the server, and the router in front of it (real
processes on 127.0.0.1), each bounded in time; any 5xx or an answer outside the schema fails."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from server_testkit import free_port

FUZZ_SECONDS = 15
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


def fuzz(url: str, workdir: Path) -> None:
    # One worker: schemathesis' coverage phase parses lambdas with ast in threads, which trips a
    # CPython 3.11 "AST constructor recursion depth mismatch" under -w >1.
    run = subprocess.run([SCHEMATHESIS, "run", f"{url}/openapi.json", "--checks",
                          "not_a_server_error,response_schema_conformance", "--max-time", str(FUZZ_SECONDS),
                          "-w", "1", "--wait-for-schema", "20", "--no-color"],
                         capture_output=True, text=True, timeout=FUZZ_SECONDS + 120, check=False,
                         cwd=workdir)  # its cache directory goes there, not into the checkout
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    assert " passed" in summary


pytestmark = pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is in the test extra: pip install -e .[test]")


def test_fuzz_server(onnx_server, tmp_path):
    fuzz(onnx_server.url, tmp_path)


def test_fuzz_router_in_front_of_the_server(onnx_server, tmp_path, log_dir):
    table = tmp_path / "routing.json"
    table.write_text('{"generation": 1, "stickyHeader": "x-user-id", "variants": [{"name": "only", '
                     f'"version": "1.0.0", "url": "{onnx_server.url}", "weight": 100, "mirror": false}}]}}')
    port = free_port()
    with open(log_dir / f"router-{port}.log", "wb") as log:
        router = subprocess.Popen([sys.executable, "-m", "mlserving.cli.main", "router", "--config", str(table),
                                   "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"],
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        fuzz(f"http://127.0.0.1:{port}", tmp_path)
    finally:
        router.terminate()
        router.wait(10)
