"""``mlserving fetch`` from an S3-compatible store, with the small ``minio`` client.

Configuration comes from the environment, as the init container gets it (the ModelDeployment's
``spec.storage.s3`` and its Secret):

- ``MLSERVING_S3_ENDPOINT``: ``http://host:port`` or ``https://host[:port]`` (required);
- ``MLSERVING_S3_REGION``: the store's region (default ``us-east-1``);
- ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``: the key pair (both, or neither for a
  store that allows anonymous reads).

``s3://bucket/prefix`` names a version directory (every object under ``prefix/`` is downloaded,
keeping its path below the prefix) or, when nothing is under ``prefix/``, a single archive
object ``prefix`` (unpacked by the caller). Every error names the URI.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from mlserving.cli.fetch import S3_DEFAULT_REGION as DEFAULT_REGION
from mlserving.cli.fetch import S3_ENDPOINT_ENV as ENDPOINT_ENV
from mlserving.cli.fetch import S3_KEY_ENVS, FetchError
from mlserving.cli.fetch import S3_REGION_ENV as REGION_ENV

ACCESS_KEY_ENV, SECRET_KEY_ENV = S3_KEY_ENVS
ARCHIVE_NAME = ".s3-archive"


def parse_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> (``bucket``, ``a/b``); FetchError for a URI without a bucket."""
    parts = urlsplit(uri)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket:
        raise FetchError(f"--uri {uri!r}: s3 URIs take a bucket: s3://bucket/prefix")
    if any(seg in ("..", ".") for seg in prefix.split("/")):
        raise FetchError(f"--uri {uri!r}: the prefix must not contain '.' or '..'")
    return bucket, prefix


def client_from_env(timeout_s: float, env: dict[str, str] | None = None) -> tuple[Minio, str]:
    """The client and the endpoint it talks to."""
    env = os.environ if env is None else env
    endpoint = env.get(ENDPOINT_ENV, "")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
        raise FetchError(f"{ENDPOINT_ENV} must be http(s)://host[:port], got {endpoint!r}")
    access, secret = env.get(ACCESS_KEY_ENV, ""), env.get(SECRET_KEY_ENV, "")
    if bool(access) != bool(secret):
        raise FetchError(f"set both {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or neither (anonymous reads)")
    # Few, short retries: a wrong endpoint must fail the init container quickly, with its name.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout_s, 10.0), read=timeout_s),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
    )
    return Minio(parts.netloc, access_key=access or None, secret_key=secret or None,
                 secure=parts.scheme == "https", region=env.get(REGION_ENV) or DEFAULT_REGION,
                 http_client=http), endpoint


def download(uri: str, dest: Path, timeout_s: float, env: dict[str, str] | None = None) -> Path | None:
    """Download ``uri`` into ``dest``: None when it was a directory, else the archive's local path."""
    bucket, prefix = parse_uri(uri)
    client, endpoint = client_from_env(timeout_s, env)
    try:
        keys = [obj.object_name for obj in client.list_objects(bucket, prefix=f"{prefix}/" if prefix else "",
                                                               recursive=True)
                if not obj.is_dir]
        if keys:
            for key in keys:
                client.fget_object(bucket, key, str(_local_path(uri, dest, prefix, key)))
            return None
        if not prefix:
            raise FetchError(f"{uri}: the bucket holds no objects")
        archive = dest / ARCHIVE_NAME
        client.fget_object(bucket, prefix, str(archive))
        return archive
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject"):
            raise FetchError(f"{uri}: no object under {prefix + '/' if prefix else 'the bucket'} "
                             f"and no archive object {prefix!r}") from None
        raise FetchError(f"{uri}: S3 error {exc.code}: {exc.message}") from None
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise FetchError(f"{uri}: cannot download from {endpoint}: {exc}") from None


def _local_path(uri: str, dest: Path, prefix: str, key: str) -> Path:
    rel = PurePosixPath(key[len(prefix):].lstrip("/") if prefix else key)
    if rel.is_absolute() or any(part in ("..", ".", "") for part in rel.parts) or not rel.parts:
        raise FetchError(f"{uri}: refusing object {key!r} (its path leaves the version directory)")
    path = dest.joinpath(*rel.parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
