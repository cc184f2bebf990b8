"""HTTPS on the serving port from ``--tls-dir`` (tls.crt + tls.key, as a kubernetes.io/tls Secret
mounts them), with the certificate reloaded into the live SSL context when the files change:
new connections get the new certificate, open ones keep theirs."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from mlserving.server.router.metrics import RouterMetrics

log = logging.getLogger("mlserving.router")


class TlsError(Exception):
    pass


def certificate_files(directory: str | Path) -> tuple[Path, Path]:
    directory = Path(directory)
    crt, key = directory / "tls.crt", directory / "tls.key"
    missing = [p.name for p in (crt, key) if not p.is_file()]
    if missing:
        raise TlsError(f"--tls-dir: {directory} lacks {' and '.join(missing)}")
    return crt, key


class CertificateReloader:
    def __init__(self, directory: str | Path, context: ssl.SSLContext, metrics: RouterMetrics):
        self.directory = Path(directory)
        self.context = context
        self.metrics = metrics

    def reload(self) -> None:
        crt, key = certificate_files(self.directory)
        try:
            self.context.load_cert_chain(crt, key)
        except (ssl.SSLError, OSError):
            self.metrics.certificate_reloads.labels("failed").inc()
            raise
        self.metrics.certificate_reloads.labels("ok").inc()
        log.info("serving certificate loaded from %s", self.directory)
