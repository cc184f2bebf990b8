"""The init container that fetches a variant's storageUri into an emptyDir: ``mlserving fetch``.

It runs the variant's own server image (``mlserving fetch`` needs the standard library for
http(s), and the server extra's ``minio`` for s3); what the command accepts is documented in
mlserving.cli.fetch, and its S3 environment in mlserving.cli.s3.
"""

from __future__ import annotations

from mlserving.cli.fetch import S3_ENDPOINT_ENV, S3_KEY_ENVS, S3_REGION_ENV
from mlserving.operator.spec import S3Store

MODEL_DIR = "/mnt/models"
CONTAINER_NAME = "fetch-model"
# The keys spec.storage.s3.secretName's Secret must hold, passed to the init container as is.
S3_SECRET_KEYS = S3_KEY_ENVS


def command(uri: str, dest: str = MODEL_DIR) -> list[str]:
    return ["mlserving", "fetch", "--uri", uri, "--dest", dest]


def s3_env(store: S3Store) -> list[dict]:
    """The environment mlserving.cli.s3 reads: the store's address, and its key pair from the Secret."""
    return [
        {"name": S3_ENDPOINT_ENV, "value": store.endpoint},
        {"name": S3_REGION_ENV, "value": store.region},
        *({"name": key, "valueFrom": {"secretKeyRef": {"name": store.secret_name, "key": key}}}
          for key in S3_SECRET_KEYS),
    ]
