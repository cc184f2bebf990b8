"""``mlserving fetch``: put one model version directory into DEST (the model-fetching init container).

``--uri`` forms:

- ``http(s)://host/fraud-1.0.0.tar.gz``: a tar archive (any compression tarfile reads: .tar,
  .tar.gz, .tgz, .tar.bz2, .tar.xz), downloaded and unpacked;
- ``file:///path`` or a plain path: a version directory, or such an archive, on a mounted volume
  (a PersistentVolumeClaim, a hostPath), copied;
- ``s3://bucket/prefix``: every object under ``prefix/`` (a version directory), or the single
  object ``prefix`` when it is such an archive, from an S3-compatible store (cli/s3.py: the
  ``minio`` client, configured by AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MLSERVING_S3_ENDPOINT
  and MLSERVING_S3_REGION).

The version directory must have ``metadata.json`` at its top, or the archive a single top-level
folder holding it. Nothing beyond the standard library is imported for http(s) and file, so those
run from the base install in any of the project's images; s3 needs the ``minio`` package (in the
``server`` extra, so in both server images). The server verifies every artifact's sha256 from
metadata.json before it turns ready, so a corrupted download never serves.

Exit status: 0 fetched, 1 the source could not be fetched or is not a model version, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

METADATA = "metadata.json"
CHUNK = 1 << 20
SCHEMES = ("http", "https", "file", "s3")
# The environment an s3:// fetch is configured by (cli/s3.py reads it, the operator's init
# container sets it): the store's address and region, and the key pair.
S3_ENDPOINT_ENV = "MLSERVING_S3_ENDPOINT"
S3_REGION_ENV = "MLSERVING_S3_REGION"
S3_DEFAULT_REGION = "us-east-1"  # also spec.storage.s3.region's default (the CRD mirrors it)
S3_KEY_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


class FetchError(Exception):
    """The source cannot be fetched or is not a model version; the message says which and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", required=True,
                        help="http(s):// URL of a tar archive, file:///path (a version directory or archive), "
                             "or s3://bucket/prefix (a version directory or archive in an S3 store)")
    parser.add_argument("--dest", required=True, metavar="DIR",
                        help="directory to fill (created if missing; typically an emptyDir)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="network timeout of an http(s) or s3 download (default 60)")


def run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        print(f"mlserving fetch: error: --timeout must be positive, got {args.timeout:g}", file=sys.stderr)
        return 2
    try:
        entries = fetch(args.uri, Path(args.dest), timeout_s=args.timeout)
    except FetchError as exc:
        print(f"mlserving fetch: error: {exc}", file=sys.stderr)
        return 1
    print(f"fetched {args.uri} into {args.dest}: {entries}")
    return 0


def fetch(uri: str, dest: Path, timeout_s: float = 60.0) -> list[str]:
    """Fill ``dest`` with the model version at ``uri``; return the names now at its top."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower() or "file"
    if scheme not in SCHEMES:
        raise FetchError(f"--uri {uri!r}: unsupported scheme {scheme!r} (use {', '.join(SCHEMES)})")
    dest.mkdir(parents=True, exist_ok=True)
    if scheme == "file":
        if parts.netloc:
            raise FetchError(f"--uri {uri!r}: file URIs take an absolute path: file:///path")
        _copy_local(Path(parts.path), dest)
    elif scheme == "s3":
        from mlserving.cli import s3  # minio: only where an s3:// URI is fetched

        archive = s3.download(uri, dest, timeout_s)
        if archive is not None:
            with archive.open("rb") as fh:
                _unpack(fh, uri, dest)
            archive.unlink()
    else:
        _download(uri, dest, timeout_s)
    _hoist_single_folder(dest)
    if not (dest / METADATA).is_file():
        raise FetchError(f"no {METADATA} in what {uri} holds: not a model version directory")
    return sorted(e.name for e in dest.iterdir())


def _download(url: str, dest: Path, timeout_s: float) -> None:
    with tempfile.TemporaryFile(dir=dest) as buf:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # scheme checked above: http(s) only
                shutil.copyfileobj(resp, buf, CHUNK)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FetchError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        buf.seek(0)
        _unpack(buf, url, dest)


def _copy_local(path: Path, dest: Path) -> None:
    if path.is_dir():
        shutil.copytree(path, dest, dirs_exist_ok=True)
    elif path.is_file():
        with path.open("rb") as fh:
            _unpack(fh, str(path), dest)
    else:
        raise FetchError(f"{path}: no such file or directory")


def _unpack(fileobj, origin: str, dest: Path) -> None:
    try:
        with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                # Refuses absolute names, '..', links out of dest and device files.
                tar.extractall(dest, filter="data")
            else:  # a Python 3.11 before 3.11.4 (Debian bookworm's 3.11.2 without the backport)
                for member in tar.getmembers():
                    if (member.name.startswith("/") or ".." in member.name.split("/")
                            or not (member.isfile() or member.isdir())):
                        raise FetchError(f"{origin}: refusing archive member {member.name!r}")
                tar.extractall(dest)  # every member checked above
    except getattr(tarfile, "FilterError", ()) as exc:
        raise FetchError(f"{origin}: refusing archive member: {exc}") from None
    except tarfile.TarError as exc:
        raise FetchError(f"{origin}: not a readable tar archive: {exc}") from None


def _hoist_single_folder(dest: Path) -> None:
    """An archive of ``1.0.0/…`` leaves one folder: move its contents up into dest."""
    entries = [e for e in dest.iterdir() if not e.name.startswith(".")]
    if (dest / METADATA).exists() or len(entries) != 1 or not entries[0].is_dir():
        return
    # Renamed first, so an entry named like the folder itself (``1.0.0/1.0.0``) can move up too.
    top = entries[0].rename(dest / f".unpacked-{entries[0].name}")
    for inner in top.iterdir():
        os.rename(inner, dest / inner.name)
    top.rmdir()
