"""The init container's download script, run for real against a local HTTP server."""

import functools
import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading

import pytest
from mlserving.operator.children import fetch


def archive(files: dict[str, bytes], top: str | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_fetch(url, dest):
    # Same argv as the init container: python -c SCRIPT URL DEST
    cmd = fetch.command(url, str(dest))
    return subprocess.run([sys.executable, *cmd[1:]], check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("top", [None, "1.0.0"])
def test_fetches_and_unpacks_a_model_archive(http_dir, tmp_path, top):
    root, base = http_dir
    files = {"metadata.json": json.dumps({"name": "fraud"}).encode(), "model.onnx": b"\x08\x01onnx"}
    (root / "fraud.tar.gz").write_bytes(archive(files, top))
    dest = tmp_path / "models"
    proc = run_fetch(f"{base}/fraud.tar.gz", dest)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"]
    assert (dest / "model.onnx").read_bytes() == b"\x08\x01onnx"


def test_archive_without_metadata_fails(http_dir, tmp_path):
    root, base = http_dir
    (root / "bad.tgz").write_bytes(archive({"model.onnx": b"x"}, None))
    proc = run_fetch(f"{base}/bad.tgz", tmp_path / "models")
    assert proc.returncode != 0
    assert "no metadata.json" in proc.stderr


def test_missing_url_fails(http_dir, tmp_path):
    _, base = http_dir
    proc = run_fetch(f"{base}/nope.tgz", tmp_path / "models")
    assert proc.returncode != 0
    assert "404" in proc.stderr


def test_path_traversal_is_refused(http_dir, tmp_path):
    root, base = http_dir
    (root / "evil.tgz").write_bytes(archive({"../escape": b"x", "metadata.json": b"{}"}, None))
    proc = run_fetch(f"{base}/evil.tgz", tmp_path / "models")
    assert proc.returncode != 0
    assert not (tmp_path / "escape").exists()
