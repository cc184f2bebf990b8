"""Drives one endpoint with wrk pinned to the load core and returns its figures."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from server_procs import prioritize

LUA_SCRIPT = Path(__file__).resolve().parent / "server_wrk" / "post.lua"
RESULT_PREFIX = "BENCH_RESULT "


def require_tools() -> None:
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk: install it with `apt-get install -y wrk` (Debian package)")
    if shutil.which("taskset") is None:
        missing.append("taskset: install it with `apt-get install -y util-linux`")
    if missing:
        sys.exit("the benchmark needs:\n  " + "\n  ".join(missing))


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    wrk_cpu_share: float  # wrk's CPU seconds / wall time: near 1.0 would mean the load generator is the limit

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(url: str, body_file: Path, connections: int, duration_s: float, core: int,
            timeout_s: float = 5.0, nice: int = 0, json_length: int | None = None) -> LoadResult:
    argv = ["nice", "-n", str(nice), "taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s",
            f"--timeout={timeout_s:g}s", "-s", str(LUA_SCRIPT), url]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    if json_length is not None:  # a v2 binary-tensor body (Inference-Header-Content-Length)
        env["BENCH_JSON_LENGTH"] = str(json_length)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    prioritize(proc.pid, nice)
    try:
        stdout, stderr = proc.communicate(timeout=duration_s + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}) on {url}:\n{stdout}\n{stderr}")
    data = json.loads(lines[-1][len(RESULT_PREFIX):])
    duration = data["duration_us"] / 1e6
    lat = data["latency_us"]
    return LoadResult(
        requests=data["requests"], duration_s=duration, rps=data["requests"] / duration,
        p50_ms=lat["p50"] / 1e3, p90_ms=lat["p90"] / 1e3, p99_ms=lat["p99"] / 1e3,
        max_ms=lat["max"] / 1e3, errors=data["errors"], wrk_cpu_share=wrk_cpu / duration)
