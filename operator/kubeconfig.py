"""Credentials for the API server: in-cluster service account, else a kubeconfig file.

Enough of the kubeconfig format for the clusters we meet: the current context (or a named one),
the cluster's server, certificate authority (file or data) and insecure-skip-tls-verify; the
user's token, tokenFile, client certificate and key (files or data), username/password, and an
``exec`` credential plugin (EKS, GKE, AKS: client.authentication.k8s.io ExecCredential). Relative
paths are relative to the kubeconfig file, as kubectl reads them.

Tokens that change under a running process are re-read: the service account token file (kubelet
rotates it) every minute, an exec plugin's token when it expires or the server answers 401.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import yaml

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_REREAD_SECONDS = 60.0


class ConfigError(ValueError):
    """No usable credentials; the message says where they were looked for and what was wrong."""


@dataclass
class Credentials:
    server: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False
    token: str | None = None
    token_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None
    exec_config: dict | None = None
    namespace: str | None = None
    origin: str = ""
    _cached: tuple[str | None, float] = field(default=(None, 0.0), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        if self.insecure:  # the server is not verified; a client certificate still authenticates us
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def authorization(self, refresh: bool = False) -> str | None:
        """The Authorization header value (None: the client certificate authenticates)."""
        if self.username and self.password and not (self.token or self.token_file or self.exec_config):
            raw = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {raw}"
        token = self.bearer_token(refresh)
        return f"Bearer {token}" if token else None

    def bearer_token(self, refresh: bool = False) -> str | None:
        if self.token_file is None and self.exec_config is None:
            return self.token
        with self._lock:
            token, valid_until = self._cached
            if token is None or refresh or time.monotonic() >= valid_until:
                token, valid_until = self._fetch_token()
                self._cached = (token, valid_until)
            return token

    def _fetch_token(self) -> tuple[str | None, float]:
        if self.token_file:
            try:
                with open(self.token_file) as fh:
                    return fh.read().strip(), time.monotonic() + TOKEN_REREAD_SECONDS
            except OSError as exc:
                raise ConfigError(f"cannot read the token file {self.token_file}: {exc}") from None
        return _run_exec_plugin(self.exec_config or {})

    def to_kopf(self):
        """The same credentials as kopf's ConnectionInfo (one source for both clients)."""
        import kopf

        return kopf.ConnectionInfo(server=self.server, ca_path=self.ca_file,
                                   ca_data=self.ca_data.encode() if self.ca_data else None,
                                   insecure=self.insecure, certificate_path=self.cert_file,
                                   private_key_path=self.key_file, username=self.username,
                                   password=self.password, token=self.bearer_token(),
                                   default_namespace=self.namespace)


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(f"{SERVICE_ACCOUNT_DIR}/token")


def load(kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    """In-cluster credentials inside a pod (unless a kubeconfig is given or $KUBECONFIG is set),
    else the kubeconfig: ``kubeconfig``, $KUBECONFIG (first file), ~/.kube/config."""
    if kubeconfig is None and not os.environ.get("KUBECONFIG") and in_cluster():
        return load_in_cluster()
    path = kubeconfig or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] or "~/.kube/config"
    return load_kubeconfig(os.path.expanduser(path), context)


def load_in_cluster() -> Credentials:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    namespace = None
    try:
        with open(f"{SERVICE_ACCOUNT_DIR}/namespace") as fh:
            namespace = fh.read().strip() or None
    except OSError:
        pass
    return Credentials(server=f"https://{host}:{port}", ca_file=f"{SERVICE_ACCOUNT_DIR}/ca.crt",
                       token_file=f"{SERVICE_ACCOUNT_DIR}/token", namespace=namespace,
                       origin="in-cluster service account")


def load_kubeconfig(path: str, context: str | None = None) -> Credentials:
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"kubeconfig {path}: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))
    name = context or config.get("current-context")
    if not name:
        raise ConfigError(f"kubeconfig {path}: no current-context")
    ctx = _named(config, "contexts", name, path).get("context") or {}
    cluster = _named(config, "clusters", ctx.get("cluster"), path).get("cluster") or {}
    user = _named(config, "users", ctx.get("user"), path).get("user") or {} if ctx.get("user") else {}
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig {path}: cluster {ctx.get('cluster')!r} has no server")

    def file_of(entry: dict, key: str) -> str | None:
        if entry.get(f"{key}-data"):
            return _data_file(entry[f"{key}-data"])
        value = entry.get(key)
        return os.path.join(base, os.path.expanduser(value)) if value else None

    ca_data = cluster.get("certificate-authority-data")
    exec_config = user.get("exec")
    if exec_config:
        exec_config = {**exec_config, "_base": base}
    return Credentials(
        server=cluster["server"].rstrip("/"),
        ca_file=None if ca_data else file_of(cluster, "certificate-authority"),
        ca_data=base64.b64decode(ca_data).decode() if ca_data else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token") or ((user.get("auth-provider") or {}).get("config") or {}).get("access-token"),
        token_file=file_of(user, "tokenFile") if user.get("tokenFile") else None,
        cert_file=file_of(user, "client-certificate"), key_file=file_of(user, "client-key"),
        username=user.get("username"), password=user.get("password"), exec_config=exec_config,
        namespace=ctx.get("namespace"), origin=f"kubeconfig {path}, context {name}")


def _named(config: dict, section: str, name: str | None, path: str) -> dict:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise ConfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")


_data_files: dict[str, str] = {}


def _data_file(data_b64: str) -> str:
    """ssl needs files for a client certificate: write inline data once per process (mode 0600)."""
    if data_b64 not in _data_files:
        fd, path = tempfile.mkstemp(prefix="mlserving-kube-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64decode(data_b64))
        _data_files[data_b64] = path
    return _data_files[data_b64]


def _run_exec_plugin(spec: dict) -> tuple[str | None, float]:
    command = spec.get("command")
    if not command:
        raise ConfigError("kubeconfig exec plugin without a command")
    if "/" in command and not os.path.isabs(command):
        command = os.path.join(spec.get("_base", ""), command)
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in spec.get("env") or []})
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": spec.get("apiVersion"),
                                              "kind": "ExecCredential", "spec": {"interactive": False}})
    try:
        done = subprocess.run([command, *(spec.get("args") or [])], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
        status = json.loads(done.stdout).get("status") or {}
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ConfigError(f"kubeconfig exec plugin {command}: {exc}") from None
    expires = status.get("expirationTimestamp")
    valid_for = 300.0
    if expires:
        stamp = datetime.fromisoformat(expires)
        valid_for = max(0.0, stamp.timestamp() - time.time() - 30)
    return status.get("token"), time.monotonic() + valid_for
