"""Polling a mounted directory (a Secret volume) for changes: the kubelet swaps a ``..data``
symlink, so a fingerprint of every visible file's identity changes whenever any of them does."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("mlserving.router")

POLL_INTERVAL_S = 1.0


def visible_files(directory: Path) -> list[Path]:
    """Every regular file (symlinks followed) whose name does not start with a dot, sorted."""
    try:
        return sorted(p for p in directory.iterdir() if not p.name.startswith(".") and p.is_file())
    except OSError:  # missing or unreadable: no files
        return []


def fingerprint(directory: Path) -> tuple:
    out = []
    for path in visible_files(directory):
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


async def watch(directory: Path, reload: Callable[[], None], what: str) -> None:
    """Calls ``reload`` now and whenever the directory's fingerprint changes (until cancelled)."""
    seen = None
    while True:
        current = fingerprint(directory)
        if current != seen:
            try:
                reload()
                seen = current
            except Exception:
                log.exception("reloading %s from %s failed; retrying", what, directory)
        await asyncio.sleep(POLL_INTERVAL_S)
