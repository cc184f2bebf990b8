#!/usr/bin/env python3
"""Instructions per request of our server, its base build and the bare ASGI ceiling, under callgrind.

Requests per second on a shared 2-core machine move by 10 to 30 % with whatever else runs; the
instructions a request costs do not. Each server runs in-process behind its uvicorn HTTP protocol
(server_instructions_harness.py): raw request bytes in, the answer out of a stand-in transport,
so the count covers uvicorn's parser and response cycle, our protocol and application and the
model call, and leaves out the kernel's socket work (the same for every server but the ceiling,
which writes each answer in two send() calls where ours writes one). Instrumentation is switched
on only for the measured requests (``callgrind_control -i on``), after 300 warm-up requests.

    .venv/bin/python bench/server_instructions.py [--base-python WORKTREE/.venv/bin/python] [--requests 2000]

The report gives instructions per request, the ceiling's count as a share of ours (the rate
share we can reach if time follows instructions: the targets are 80 % for v2 infer and 85 % for
``/predict``) and, with a base build, ours against it. Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "server_instructions_harness.py"
TARGETS = {"v2": 0.80, "predict": 0.85}  # ceiling share of ours wanted, per endpoint


def count(who: str, python: str, endpoint: str, model_dir: Path, requests: int, workdir: Path) -> int:
    ceiling = who == "ceiling"
    label = f"{who}-{endpoint}"
    marker, out = workdir / label, workdir / f"{label}.callgrind"
    env = {**os.environ, "MODEL_PATH": str(model_dir), "MARKER": str(marker), "REQUESTS": str(requests),
           "METRICS_PORT": "0", "LOG_LEVEL": "warning", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            python, str(HARNESS), endpoint, *(["ceiling"] if ceiling else [])]
    with open(workdir / f"{label}.log", "w") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for stage, command in ((".warm", "on"), (".done", "off")):
            while not Path(f"{marker}{stage}").exists():
                if proc.poll() is not None:
                    sys.exit(f"{label}: the harness stopped (exit {proc.returncode}); see {workdir / label}.log")
                time.sleep(0.2)
            subprocess.run(["callgrind_control", "-i", command, str(proc.pid)], check=True, capture_output=True)
            Path(f"{marker}{'.go' if command == 'on' else '.end'}").touch()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    totals = [int(line.split()[1]) for path in workdir.glob(f"{label}.callgrind*")
              for line in path.read_text().splitlines() if line.startswith("totals:")]
    if not totals:
        sys.exit(f"{label}: callgrind wrote no totals")
    return sum(totals) // requests


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-python", help="python of a base build's venv (a git worktree of the commit before)")
    p.add_argument("--model-dir", type=Path, help="version directory with model.onnx (default: trained here)")
    p.add_argument("--requests", type=int, default=2000, help="measured requests per server and endpoint")
    args = p.parse_args(argv)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind (with callgrind_control) is not installed: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="mlserving-instructions-") as tmp:
        workdir = Path(tmp)
        model_dir = args.model_dir
        if model_dir is None:
            subprocess.run([str(Path(sys.executable).parent / "mlserving"), "train", "--model", "fraud",
                            "--version", "1.0.0", "--out", str(workdir / "models")], check=True, capture_output=True)
            model_dir = workdir / "models" / "fraud" / "1.0.0"
        ceiling = count("ceiling", sys.executable, "v2", model_dir, args.requests, workdir)
        rows = [("bare ASGI ceiling", "v2", ceiling, None, None)]
        for endpoint, target in TARGETS.items():
            ours = count("ours", sys.executable, endpoint, model_dir, args.requests, workdir)
            base = count("base", args.base_python, endpoint, model_dir, args.requests, workdir) if args.base_python else None
            if base is not None:
                rows.append(("base", endpoint, base, ceiling / base, None))
            rows.append(("ours", endpoint, ours, ceiling / ours, ours / base if base else None))
    print(f"\ninstructions per request, {args.requests} requests each (callgrind)\n")
    print("| server | endpoint | instructions | ceiling / this | this / base |")
    print("|---|---|---:|---:|---:|")
    for server, endpoint, n, share, against in rows:
        print(f"| {server} | {endpoint} | {n:,} | {f'{share:.0%}' if share else ''} | "
              f"{f'{against:.3f}' if against else ''} |")
    for server, endpoint, _, share, _ in rows:
        if server == "ours":
            target = TARGETS[endpoint]
            print(f"ours {endpoint}: the ceiling's count is {share:.0%} of ours (target {target:.0%}: "
                  f"{'met' if share >= target else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
