"""`mlserving fetch --uri s3://...` as the init container runs it, against a real S3 store
(SeaweedFS on 127.0.0.1, checking request signatures; tests/s3_store.py)."""

import io
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
from mlserving.operator.children import fetch as init_container
from s3_store import running_store

MLSERVING = pathlib.Path(sys.executable).parent / "mlserving"
FILES = {"metadata.json": b'{"name": "fraud"}', "model.onnx": b"\x08\x01onnx", "reference/stats.json": b"{}"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with running_store("127.0.0.1", tmp_path_factory.mktemp("seaweedfs")) as running:
        client = running.client()
        client.make_bucket("models")
        for name, data in FILES.items():
            client.put_object("models", f"fraud/1.0.0/{name}", io.BytesIO(data), len(data))
        client.put_object("models", "fraud/1.0.0-other/metadata.json", io.BytesIO(b"{}"), 2)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in FILES.items():
                info = tarfile.TarInfo(f"2.0.0/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        client.put_object("models", "fraud/2.0.0.tar.gz", io.BytesIO(buf.getvalue()), len(buf.getvalue()))
        yield running


def run_fetch(uri, dest, env):
    cmd = init_container.command(uri, str(dest))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLSERVING_S3_"))}
    return subprocess.run([str(MLSERVING), *cmd[1:]], check=False, capture_output=True, text=True, timeout=120,
                          env={**clean, **env})


def test_fetches_a_version_directory_under_a_prefix(store, tmp_path):
    dest = tmp_path / "models"
    proc = run_fetch("s3://models/fraud/1.0.0", dest, store.env())
    assert proc.returncode == 0, proc.stderr
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    # Only the prefix's own directory: fraud/1.0.0-other shares the string prefix, not the folder.
    assert got == FILES


def test_fetches_and_unpacks_an_archive_object(store, tmp_path):
    dest = tmp_path / "models"
    proc = run_fetch("s3://models/fraud/2.0.0.tar.gz", dest, store.env())
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx", "reference"]


@pytest.mark.parametrize(("uri", "env_change", "fragment"), [
    ("s3://models/fraud/1.0.0", {"AWS_SECRET_ACCESS_KEY": "wrong-secret"}, "SignatureDoesNotMatch"),
    ("s3://models/fraud/1.0.0", {"AWS_ACCESS_KEY_ID": "nobody"}, "S3 error"),
    ("s3://models/fraud/9.9.9", {}, "no object under fraud/9.9.9/"),
    ("s3://no-such-bucket/fraud/1.0.0", {}, "NoSuchBucket"),
])
def test_a_wrong_key_or_a_missing_object_fails_naming_the_uri(store, tmp_path, uri, env_change, fragment):
    dest = tmp_path / "models"
    proc = run_fetch(uri, dest, {**store.env(), **env_change})
    assert proc.returncode == 1, proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mlserving fetch: error: {uri}: "), proc.stderr
    assert fragment in last
    assert not (dest / "metadata.json").exists()


def test_an_unreachable_endpoint_fails_quickly_naming_it(tmp_path):
    env = {"MLSERVING_S3_ENDPOINT": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    proc = run_fetch("s3://models/fraud/1.0.0", tmp_path / "models", env)
    assert proc.returncode == 1
    assert "cannot download from http://127.0.0.1:9" in proc.stderr


@pytest.mark.parametrize(("uri", "env", "fragment"), [
    ("s3:///fraud", {"MLSERVING_S3_ENDPOINT": "http://127.0.0.1:9"}, "take a bucket"),
    ("s3://models/fraud", {}, "MLSERVING_S3_ENDPOINT must be http(s)://host[:port]"),
    ("s3://models/fraud", {"MLSERVING_S3_ENDPOINT": "http://h:1", "AWS_ACCESS_KEY_ID": "a"}, "set both"),
])
def test_bad_s3_configuration_is_named(tmp_path, uri, env, fragment):
    proc = run_fetch(uri, tmp_path / "models", env)
    assert proc.returncode == 1
    assert fragment in proc.stderr
