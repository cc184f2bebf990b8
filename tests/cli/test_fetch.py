"""`mlserving fetch`, run as the init container runs it (a real process) against a local HTTP server."""

import functools
import http.server
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import threading

import pytest
from mlserving.operator.children import fetch as init_container

MLSERVING = pathlib.Path(sys.executable).parent / "mlserving"
FILES = {"metadata.json": json.dumps({"name": "fraud"}).encode(), "model.onnx": b"\x08\x01onnx"}


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


def run_fetch(uri, dest):
    # The init container's own argv, with this venv's `mlserving` in place of the image's.
    cmd = init_container.command(uri, str(dest))
    assert cmd[0] == "mlserving"
    return subprocess.run([str(MLSERVING), *cmd[1:]], check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("top", [None, "1.0.0"])
def test_fetches_and_unpacks_a_model_archive(http_dir, tmp_path, top):
    root, base = http_dir
    (root / "fraud.tar.gz").write_bytes(archive(FILES, top))
    dest = tmp_path / "models"
    proc = run_fetch(f"{base}/fraud.tar.gz", dest)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"]
    assert (dest / "model.onnx").read_bytes() == b"\x08\x01onnx"
    assert "fetched" in proc.stdout


def test_a_folder_named_like_its_parent_moves_up_too(http_dir, tmp_path):
    root, base = http_dir
    (root / "odd.tgz").write_bytes(archive({**FILES, "1.0.0/notes.txt": b"hi"}, "1.0.0"))
    dest = tmp_path / "models"
    proc = run_fetch(f"{base}/odd.tgz", dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "1.0.0" / "notes.txt").read_bytes() == b"hi"
    assert (dest / "metadata.json").is_file()


def test_copies_a_version_directory_from_a_mounted_volume(tmp_path):
    src = tmp_path / "claim" / "fraud" / "1.0.0"
    src.mkdir(parents=True)
    for name, data in FILES.items():
        (src / name).write_bytes(data)
    dest = tmp_path / "models"
    proc = run_fetch(f"file://{src}", dest)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"]


def test_unpacks_an_archive_from_a_mounted_volume(tmp_path):
    src = tmp_path / "fraud.tar"
    src.write_bytes(archive(FILES, None))
    proc = run_fetch(str(src), tmp_path / "models")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "models" / "model.onnx").is_file()


def test_archive_without_metadata_fails(http_dir, tmp_path):
    root, base = http_dir
    (root / "bad.tgz").write_bytes(archive({"model.onnx": b"x"}, None))
    proc = run_fetch(f"{base}/bad.tgz", tmp_path / "models")
    assert proc.returncode == 1
    assert "no metadata.json" in proc.stderr


def test_missing_url_fails_with_the_http_status(http_dir, tmp_path):
    _, base = http_dir
    proc = run_fetch(f"{base}/nope.tgz", tmp_path / "models")
    assert proc.returncode == 1
    assert "HTTP 404" in proc.stderr


def test_not_an_archive_fails(http_dir, tmp_path):
    root, base = http_dir
    (root / "page.html").write_bytes(b"<html>not a model</html>")
    proc = run_fetch(f"{base}/page.html", tmp_path / "models")
    assert proc.returncode == 1
    assert "not a readable tar archive" in proc.stderr


@pytest.mark.parametrize("uri", ["gs://bucket/fraud.tgz", "ftp://host/fraud.tgz"])
def test_unsupported_scheme_is_refused_naming_it(tmp_path, uri):
    proc = run_fetch(uri, tmp_path / "models")
    assert proc.returncode == 1
    assert "unsupported scheme" in proc.stderr and uri.split(":")[0] in proc.stderr


def test_path_traversal_is_refused(http_dir, tmp_path):
    root, base = http_dir
    (root / "evil.tgz").write_bytes(archive({"../escape": b"x", "metadata.json": b"{}"}, None))
    proc = run_fetch(f"{base}/evil.tgz", tmp_path / "models")
    assert proc.returncode == 1
    assert "refusing archive member" in proc.stderr
    assert not (tmp_path / "escape").exists()


def test_usage_errors_exit_2(tmp_path):
    proc = subprocess.run([str(MLSERVING), "fetch", "--dest", str(tmp_path)], check=False,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--uri" in proc.stderr
