"""The on-disk model registry: ``<root>/<model>/<version>/`` holding the artifacts and metadata.json.

Training writes it; the server reads and verifies it. This module imports nothing heavy so the
server can use it without loading scikit-learn.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

METADATA_FILE = "metadata.json"
JOBLIB_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
XGBOOST_JSON_FILE = "model.xgb.json"
XGBOOST_UBJ_FILE = "model.xgb.ubj"
LIGHTGBM_FILE = "model.lgb.txt"
# Each framework's own artifact, in the order the server looks for them.
NATIVE_FILES = {"sklearn": (JOBLIB_FILE,), "xgboost": (XGBOOST_JSON_FILE, XGBOOST_UBJ_FILE),
                "lightgbm": (LIGHTGBM_FILE,)}
NAME_RULE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
VERSION_RULE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$")


class RegistryError(Exception):
    """A registry entry that cannot be written or trusted; the message says which file and why."""


def check_name(name: str) -> str:
    if not NAME_RULE.match(name):
        raise RegistryError(f"model: {name!r} must be a lowercase DNS label (a-z, 0-9, '-', at most 63 chars)")
    return name


def check_version(version: str) -> str:
    if not VERSION_RULE.match(version) or version in (".", ".."):
        raise RegistryError(f"version: {version!r} must be 1-63 chars of letters, digits, '.', '+', '_', '-'")
    return version


def version_dir(root: Path, name: str, version: str) -> Path:
    return Path(root) / check_name(name) / check_version(version)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_version(root: Path, name: str, version: str, artifacts: dict[str, bytes | Path],
                  metadata: dict, force: bool = False) -> Path:
    """Writes the artifacts, records their sha256 in metadata.json, and moves the finished
    directory into place in one rename so a reader never sees half a version."""
    target = version_dir(root, name, version)
    if target.exists() and not force:
        raise RegistryError(f"{target} already exists; pass --force to retrain this version")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
    try:
        hashes = {}
        for filename, content in artifacts.items():
            path = staging / filename
            if isinstance(content, Path):
                shutil.copyfile(content, path)
            else:
                path.write_bytes(content)
            hashes[filename] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        metadata = {**metadata, "artifacts": hashes}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
        os.chmod(staging, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_metadata(directory: Path) -> dict:
    path = Path(directory) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise RegistryError(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: unreadable: {exc}") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("artifacts"), dict):
        raise RegistryError(f"{path}: no 'artifacts' table with the sha256 of each file")
    return metadata


def verify_artifacts(directory: Path, metadata: dict) -> None:
    """Raises RegistryError naming the first artifact that is missing or whose sha256 differs."""
    for filename, entry in metadata["artifacts"].items():
        path = Path(directory) / filename
        if not path.is_file():
            raise RegistryError(f"{path}: listed in metadata.json but missing")
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        actual = sha256_file(path)
        if actual != expected:
            raise RegistryError(f"{path}: sha256 {actual} does not match metadata.json ({expected})")
