#!/usr/bin/env python3
"""What the router costs: added latency at a constant rate, and saturation throughput on one core.

Starts real processes on 127.0.0.1: `mlserving serve` (fraud model, versions trained here unless
--models is given) and `mlserving router` in front of it, and drives them with vegeta (built from
github.com/tsenart/vegeta/v12 v12.13.0 with `go install` if it is not on PATH or in ~/go/bin).

1. Latency, constant rate well below saturation (default 500 rps): the server directly and through
   the router, both at that rate at the same time (so noise from other work hits both alike), for
   --rounds rounds; the router's added p50/p99 (medians of rounds) against the targets (1 ms, 3 ms).
2. Mirror: the routed path at the same rate with a mirror variant up, then with it stopped.
3. Saturation on one core: server alone on CPU 0; then the router on CPU 0 and the server on CPU 1
   (the load generator on CPU 1 in both: wrk if installed, else vegeta). Also CPU time per request of each process, the steadier figure on a
   shared machine.

Run: .venv/bin/python bench/router_latency.py [--rate 500] [--duration 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import router_procs
from router_procs import Proc, cpu_seconds, free_port, pinned, write_table

VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"
BODY = json.dumps({"features": [0.1 * i for i in range(20)]})


def find_vegeta() -> str:
    for candidate in (shutil.which("vegeta"), str(Path.home() / "go" / "bin" / "vegeta")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if shutil.which("go") is None:
        sys.exit("vegeta not found and Go is not installed: install Go, or put vegeta on PATH")
    print(f"building vegeta: go install {VEGETA_MODULE} ...", flush=True)
    subprocess.run(["go", "install", VEGETA_MODULE], check=True)
    return str(Path.home() / "go" / "bin" / "vegeta")


class Vegeta:
    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.body = workdir / "body.json"
        self.body.write_text(BODY)

    def attack(self, url: str, rate: int, duration: float, workers: int | None = None,
               cpu: str | None = None) -> dict:
        cmd = [self.binary, "attack", f"-rate={rate}", f"-duration={duration}s", f"-body={self.body}",
               "-header=Content-Type: application/json", "-timeout=10s"]
        if workers:
            cmd += [f"-workers={workers}", f"-max-workers={workers}"]
        attack = subprocess.run(pinned(cmd, cpu), input=f"POST {url}\n".encode(), capture_output=True, check=True)
        report = subprocess.run([self.binary, "report", "-type=json"], input=attack.stdout,
                                capture_output=True, check=True)
        result = json.loads(report.stdout)
        lat = result["latencies"]
        return {"rate": result["rate"], "throughput": result["throughput"], "success": result["success"],
                "status_codes": result["status_codes"], "requests": result["requests"],
                "p50_ms": lat["50th"] / 1e6, "p99_ms": lat["99th"] / 1e6, "mean_ms": lat["mean"] / 1e6,
                "max_ms": lat["max"] / 1e6}


class Wrk:
    """Closed-loop load for the saturation phases: wrk costs less CPU per request than vegeta."""

    SCRIPT = Path(__file__).resolve().parent / "router_wrk_post.lua"

    def __init__(self, binary: str, body: Path):
        self.binary = binary
        self.body = body

    def attack(self, url: str, duration: float, connections: int, cpu: str | None = None) -> dict:
        cmd = [self.binary, "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout=10s", "-s", str(self.SCRIPT), url]
        out = subprocess.run(pinned(cmd, cpu), capture_output=True, text=True, check=True,
                             env={**os.environ, "ROUTER_BENCH_BODY": str(self.body)}).stdout
        result = json.loads(out.split("ROUTER_BENCH ", 1)[1].splitlines()[0])
        ok = result["requests"] - result["non2xx"]
        codes = {"200": ok} | ({"non-2xx": result["non2xx"]} if result["non2xx"] else {}) | (
            {"socket errors": result["socket_errors"]} if result["socket_errors"] else {})
        return {"rate": result["requests"] / result["seconds"], "throughput": ok / result["seconds"],
                "requests": result["requests"], "status_codes": codes, "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"], "max_ms": result["max_ms"]}


def train(models: Path) -> None:
    for seed, version in ((1, "1.0.0"), (2, "2.0.0")):
        if (models / "fraud" / version / "metadata.json").exists():
            continue
        subprocess.run([sys.executable, "-m", "mlserving.cli.main", "train", "--model", "fraud", "--version",
                        version, "--out", str(models), "--seed", str(seed), "--samples", "5000"],
                       check=True, capture_output=True)


def serve(models: Path, version: str, logs: Path, cpu: str | None) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "mlserving.cli.main", "serve", "--model-path", str(models / "fraud" / version),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
           "--metrics-port", "0"]  # /metrics on the main port: two servers run at once
    return Proc(f"serve-{version}", cmd, port, logs, cpu).start("/health/ready")


def route(table: Path, logs: Path, cpu: str | None) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "mlserving.cli.main", "router", "--config", str(table), "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--metrics-port", "0"]
    return Proc("router", cmd, port, logs, cpu).start("/health/ready")


def line(name: str, r: dict) -> str:
    codes = ",".join(f"{k}:{v}" for k, v in sorted(r["status_codes"].items()))
    return (f"  {name:<28} {r['rate']:>7.0f} {r['throughput']:>9.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
            f"{r['max_ms']:>8.2f}  {codes}")


HEADER = f"  {'phase':<28} {'rate':>7} {'rps ok':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  status codes"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="constant request rate of the latency phases")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the latency phase")
    parser.add_argument("--workers", type=int, default=64, help="connections (wrk) or workers (vegeta) when saturating")
    parser.add_argument("--models", type=Path, help="registry with fraud 1.0.0 and 2.0.0 (default: train now)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--skip-saturation", action="store_true")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the measured processes and vegeta (e.g. -10 on a busy shared machine)")
    args = parser.parse_args()
    router_procs.NICE = args.nice

    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="router-bench-"))
    models = args.models or work / "models"
    vegeta = Vegeta(find_vegeta(), work)
    print(f"load average before: {load_average()}  (cores: {cores}, nice {args.nice})", flush=True)
    train(models)
    results: dict = {"rate": args.rate, "duration_s": args.duration, "load_before": load_average()}
    procs: list[Proc] = []
    try:
        # 1. Added latency. Server on CPU 0, router on CPU 1: in a cluster they run in separate pods.
        server = serve(models, "1.0.0", work, "0" if cores > 1 else None)
        mirror = serve(models, "2.0.0", work, "0" if cores > 1 else None)
        procs += [server, mirror]
        table = work / "routing.json"
        write_table(table, [("stable", "1.0.0", server.url, 100, False)])
        router = route(table, work, "1" if cores > 1 else None)
        procs.append(router)
        vegeta.attack(server.url + "/predict", args.rate, 2)  # warm-up, both paths
        vegeta.attack(router.url + "/predict", args.rate, 2)
        print(f"\n1. latency at {args.rate} rps on each path at the same time, {args.duration:g} s per round"
              f"\n{HEADER}", flush=True)
        direct, routed = [], []
        for i in range(args.rounds):
            # Both paths at once: whatever else the machine does hits both alike.
            with ThreadPoolExecutor(2) as pool:
                pair = [pool.submit(vegeta.attack, url + "/predict", args.rate, args.duration)
                        for url in (server.url, router.url)]
                direct.append(pair[0].result())
                routed.append(pair[1].result())
            print(line(f"direct to server #{i + 1}", direct[-1]), flush=True)
            print(line(f"through router #{i + 1}", routed[-1]), flush=True)
        disturbed = [i + 1 for i, r in enumerate(direct) if r["p99_ms"] > 20]
        if disturbed:
            print(f"  WARNING: the direct path's own p99 exceeded 20 ms in round(s) {disturbed}: other work "
                  "disturbed the machine; added-latency figures from such rounds are noise")
        p50 = median(r["p50_ms"] for r in routed) - median(r["p50_ms"] for r in direct)
        p99 = median(r["p99_ms"] for r in routed) - median(r["p99_ms"] for r in direct)
        print(f"  added by the router (median of rounds): p50 {p50:+.3f} ms (target <= 1 ms), "
              f"p99 {p99:+.3f} ms (target <= 3 ms)  -> {'MET' if p50 <= 1 and p99 <= 3 else 'MISSED'}")
        results["latency"] = {"direct": direct, "routed": routed, "added_p50_ms": p50, "added_p99_ms": p99}

        # 2. Mirror up, then stopped.
        write_table(table, [("stable", "1.0.0", server.url, 100, False), ("shadow", "2.0.0", mirror.url, 0, True)],
                    generation=2)
        time.sleep(1.5)
        print(f"\n2. mirror at {args.rate} rps\n{HEADER}", flush=True)
        up = vegeta.attack(router.url + "/predict", args.rate, args.duration)
        print(line("routed, mirror up", up), flush=True)
        mirror.stop()
        down = vegeta.attack(router.url + "/predict", args.rate, args.duration)
        print(line("routed, mirror stopped", down), flush=True)
        print(f"  p99 mirror stopped / mirror up: {down['p99_ms'] / up['p99_ms']:.2f}; status codes "
              f"{'unchanged' if up['status_codes'] == {'200': up['requests']} and down['status_codes'] == {'200': down['requests']} else 'CHANGED'}")
        results["mirror"] = {"up": up, "stopped": down}
        router.stop()
        server.stop()

        # 3. Saturation on one core each.
        if not args.skip_saturation and cores > 1:
            wrk_binary = shutil.which("wrk")
            closed = Wrk(wrk_binary, vegeta.body) if wrk_binary else None

            def saturate(url: str, seconds: float) -> dict:
                if closed:
                    return closed.attack(url, seconds, args.workers, cpu="1")
                return vegeta.attack(url, 0, seconds, workers=args.workers, cpu="1")

            tool = (f"wrk, {args.workers} connections" if closed else
                    f"vegeta, {args.workers} workers (apt-get install wrk for a cheaper load generator)")
            print(f"\n3. saturation, {tool}, {args.duration:g} s\n{HEADER}", flush=True)
            server = serve(models, "1.0.0", work, "0")
            procs.append(server)
            saturate(server.url + "/predict", 2)
            c0 = cpu_seconds(server.pid)
            alone = saturate(server.url + "/predict", args.duration)
            server_cpu_us = (cpu_seconds(server.pid) - c0) / alone["requests"] * 1e6
            print(line("server alone on CPU 0", alone), flush=True)
            server.stop()

            server = serve(models, "1.0.0", work, "1")
            procs.append(server)
            write_table(table, [("stable", "1.0.0", server.url, 100, False)], generation=3)
            router = route(table, work, "0")
            procs.append(router)
            saturate(router.url + "/predict", 2)
            c0, s0, t0 = cpu_seconds(router.pid), cpu_seconds(server.pid), time.monotonic()
            sat = saturate(router.url + "/predict", args.duration)
            elapsed = time.monotonic() - t0
            router_busy = (cpu_seconds(router.pid) - c0) / elapsed
            router_cpu_us = (cpu_seconds(router.pid) - c0) / sat["requests"] * 1e6
            server_cpu_us_2 = (cpu_seconds(server.pid) - s0) / sat["requests"] * 1e6
            print(line("router on CPU 0", sat), flush=True)
            print(f"  router CPU 0 busy {router_busy * 100:.0f} % during its run "
                  f"({'router-bound' if router_busy > 0.9 else 'NOT router-bound: CPU 1 (server + load generator) limits'})")
            print(f"  saturation rps router / server: {sat['throughput']:.0f} / {alone['throughput']:.0f} = "
                  f"{sat['throughput'] / alone['throughput']:.2f}")
            print(f"  CPU per request: router {router_cpu_us:.0f} us, server {server_cpu_us:.0f} us alone, "
                  f"{server_cpu_us_2:.0f} us behind the router; router / server = {router_cpu_us / server_cpu_us:.2f}")
            print(f"  one full core at that cost: router {1e6 / router_cpu_us:.0f} rps, "
                  f"server {1e6 / server_cpu_us:.0f} rps")
            results["saturation"] = {"server": alone, "router": sat, "router_cpu_busy": router_busy,
                                     "router_cpu_us_per_request": router_cpu_us,
                                     "server_cpu_us_per_request": server_cpu_us}
    finally:
        for proc in procs:
            proc.stop()
    results["load_after"] = load_average()
    print(f"\nload average after: {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
