"""Server processes for the benchmark: start pinned to a core, wait for readiness, measure the tree.

A server may fork workers (MLServer runs its model in a separate process), so memory and CPU are
summed over the whole process tree of the started process, read from /proc.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


def http_post_json(port: int, path: str, body: bytes, timeout: float = 10.0,
                   headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers or {"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        length = resp.getheader("inference-header-content-length")
        return resp.status, raw if length is None else (raw[:int(length)], raw[int(length):])
    finally:
        conn.close()


def prioritize(pid: int, nice: int) -> None:
    """Gives the session that `pid` leads the niceness `nice`.

    With the kernel's autogroup scheduling (sched_autogroup_enabled=1), CPU time is shared fairly
    between sessions first, so a process's own nice value only ranks it within its session; the
    session's weight is /proc/PID/autogroup. The servers and wrk each run in a session of their
    own, so this sets both.
    """
    if nice == 0:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError as exc:
        print(f"warning: cannot set the autogroup nice of pid {pid} to {nice}: {exc}", flush=True)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of every live process in the tree."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def core_busy_seconds(core: int) -> float:
    """Seconds core `core` spent on anything but idle and I/O wait, from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                ticks = [int(v) for v in line.split()[1:]]
                return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS  # minus idle, iowait
    raise RuntimeError(f"/proc/stat has no line for cpu{core}")


@dataclass
class ServerProcess:
    """One server started under `taskset -c CORE`, in its own session so its tree stops together."""

    label: str
    argv: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    core: int
    log_path: str
    cwd: str | None = None
    nice: int = 0
    proc: subprocess.Popen | None = None
    start_to_ready_s: float | None = None
    _log: object = field(default=None, repr=False)

    def start(self, timeout_s: float) -> float:
        """Starts the process and returns the seconds from spawn to the first 200 on ready_path."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop(), outlives this call
        env = {**os.environ, **self.env}
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["nice", "-n", str(self.nice), "taskset", "-c", str(self.core), *self.argv], env=env, cwd=self.cwd,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        prioritize(self.proc.pid, self.nice)
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with code {self.proc.returncode} before it was "
                                   f"ready; its log: {self.log_path}")
            if http_get_status(self.port, self.ready_path, timeout=0.5) == 200:
                self.start_to_ready_s = time.monotonic() - t0
                return self.start_to_ready_s
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.label} was not ready on :{self.port}{self.ready_path} within "
                           f"{timeout_s:.0f} s; its log: {self.log_path}")

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session=True made the child the leader of its own group
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        # Workers that outlived their parent still carry the group id.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class TreeSampler:
    """Samples the RSS of a process tree in a background thread; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.25):
        self.pid = pid
        self.interval_s = interval_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, tree_rss_bytes(self.pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
