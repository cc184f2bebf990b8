"""Our inference server against MLServer 1.7.1 on the same artifact, in one invocation.

    .venv/bin/python bench/server_vs_mlserver.py            # forest, XGBoost, LightGBM: ~20 minutes
    .venv/bin/python bench/server_vs_mlserver.py --models xgboost,random_forest:multiclass --rounds 1
    .venv/bin/python bench/server_vs_mlserver.py --model-dir models/fraud/1.0.0 --duration 5

Each server is pinned to core 0 with taskset and driven by wrk pinned to core 1 (this script pins
itself to core 1 too). Servers run in turn, A B A B, for --rounds rounds; every start is timed
from spawn to ready, and every server must answer the sample rows with the probabilities the
model's own framework gives (within --tolerance) before it is timed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import server_models
from server_load import LoadResult, require_tools, run_wrk
from server_mlserver import DEFAULT_VENV, MLSERVER_VERSION, ensure_venv, mlserver_process
from server_models import BenchModel
from server_procs import (
    ServerProcess,
    TreeSampler,
    core_busy_seconds,
    free_port,
    http_post_json,
    tree_cpu_seconds,
)

REPO = Path(__file__).resolve().parent.parent
TARGET_RPS_RATIO = 5.0
TARGET_P99_RATIO = 0.2
TARGET_READY_S = 1.5
TARGET_RSS_MB = 150.0
# Share of the bare ASGI ceiling's v2 rate our server as shipped must reach, per endpoint.
TARGET_CEILING_SHARE = {"v2": 0.80, "predict": 0.85}


@dataclass
class Target:
    """One server configuration to time, with the endpoints it is driven on."""

    label: str
    kind: str  # "ours", "mlserver" or "ceiling"
    endpoints: dict[str, str]  # endpoint label -> path
    make: object  # () -> ServerProcess
    v2_output: str  # the v2 output asked for, holding the scores


@dataclass
class Run:
    model: str
    round: int
    server: str
    kind: str
    endpoint: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict
    server_cpu_share: float
    core_other_share: float  # the rest of the server core's busy time: other processes, interrupts
    wrk_cpu_share: float
    peak_rss_mb: float
    loadavg_1m: float


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="random_forest,xgboost,lightgbm",
                   help="comma-separated ALGORITHM[:DATASET] that `mlserving train` makes and every server "
                        "serves in turn (datasets: fraud (binary, the default), multiclass, regression); "
                        "default random_forest,xgboost,lightgbm")
    p.add_argument("--model-dir", type=Path,
                   help="serve this version directory (metadata.json and the framework's own artifact) "
                        "instead of training --models")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per timed wrk run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load per endpoint after "
                                                             "each start (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="A B A B rounds (default 2)")
    p.add_argument("--connections", default="16,64", help="comma-separated wrk connection counts")
    p.add_argument("--servers", default="ours,mlserver",
                   help="comma-separated, from ours, mlserver and ceiling (a bare ASGI callable + ONNX Runtime "
                        "on uvicorn: what any server on that stack can reach; needs model.onnx)")
    p.add_argument("--ours-formats", default="auto,native",
                   help="MODEL_FORMAT values our server is timed with; 'auto' leaves it unset (the server "
                        "prefers model.onnx, compiled from the same model); 'native' serves the framework's "
                        "own artifact; default auto,native")
    p.add_argument("--mlserver-batching", default="64:0.01,32:0.005",
                   help="MLServer adaptive batching configs as max_batch_size:max_batch_time_s, comma-separated")
    p.add_argument("--mlserver-parallel-workers", type=int, default=1,
                   help="MLServer parallel_workers (default 1, its own default)")
    p.add_argument("--mlserver-venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--mlserving", default=None, help="the mlserving executable (default: .venv/bin/mlserving)")
    p.add_argument("--mlserving-base", default=None,
                   help="another mlserving executable (e.g. a worktree of the base commit) timed as 'base' in "
                        "the same rounds, for A B A B comparisons of a change")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--load-core", type=int, default=1)
    p.add_argument("--nice", type=int, default=0,
                   help="niceness increment for the servers and wrk; a negative value (root only) shields the "
                        "figures from other work on a shared machine (default 0)")
    p.add_argument("--tolerance", type=float, default=5e-6,
                   help="largest allowed |probability - model's own| per server; twice this bounds the "
                        "difference between the two servers (default 5e-6)")
    p.add_argument("--ready-timeout", type=float, default=120.0)
    p.add_argument("--json-out", type=Path, default=None,
                   help="where to write all figures (default bench/results/server_vs_mlserver-<time>.json)")
    return p.parse_args(argv)


# ---------------------------------------------------------------- correctness gate

def check_answers(target: Target, port: int, model: BenchModel, rows: np.ndarray, expected: np.ndarray,
                  tolerance: float, answers: dict) -> None:
    for endpoint, path in target.endpoints.items():
        got = []
        for row in rows:
            if endpoint == "predict":
                status, raw = http_post_json(port, path, server_models.predict_body(row))
                value = server_models.from_predict(model, json.loads(raw)) if status == 200 else None
            elif endpoint == "v2bin":
                body, json_length = server_models.v2_binary_body(row, target.v2_output)
                status, raw = http_post_json(port, path, body, headers={
                    "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(json_length)})
                value = server_models.from_v2_binary(model, *raw, target.v2_output) if status == 200 else None
            else:
                status, raw = http_post_json(port, path, server_models.v2_body(row, target.v2_output))
                value = server_models.from_v2(model, json.loads(raw), target.v2_output) if status == 200 else None
            if status != 200:
                raise RuntimeError(f"{target.label} {path}: HTTP {status}: {raw[:500]!r}; refusing to time it")
            got.append(value)
        diff = np.abs(np.array(got) - expected)
        if diff.max() > tolerance * max(1.0, float(np.abs(expected).max())):
            raise RuntimeError(f"{target.label} {path} answers {got}, {model.framework} gives {expected.tolist()} "
                               f"(max |diff| {diff.max():.2e} > {tolerance:g}); refusing to time it")
        answers[(model.label, target.label, endpoint)] = got


# ---------------------------------------------------------------- targets

def mlserving_executable(args) -> str:
    if args.mlserving:
        return args.mlserving
    local = REPO / ".venv" / "bin" / "mlserving"
    return str(local) if local.exists() else (shutil.which("mlserving") or "mlserving")


def build_targets(args, workdir: Path, model: BenchModel) -> list[Target]:
    targets = []
    servers = {s.strip() for s in args.servers.split(",") if s.strip()}
    unknown = servers - {"ours", "mlserver", "ceiling"}
    if unknown:
        sys.exit(f"--servers: unknown {sorted(unknown)}; the rule: a comma-separated subset of ours,mlserver,ceiling")
    name, model_dir = model.name, model.directory
    v2_path = f"/v2/models/{name}/infer"
    if "ours" in servers:
        exes = [("ours", mlserving_executable(args), {"v2": v2_path, "v2bin": v2_path, "predict": "/predict"})]
        if args.mlserving_base:
            exes.insert(0, ("base", args.mlserving_base, {"v2": v2_path, "predict": "/predict"}))
        for (who, exe, endpoints), fmt in [(e, f.strip()) for e in exes for f in args.ours_formats.split(",")
                                           if f.strip()]:
            if fmt not in ("auto", "onnx", "native", "sklearn"):
                sys.exit(f"--ours-formats: {fmt!r} is not one of auto, onnx, native")
            has_onnx = (model_dir / "model.onnx").is_file()
            if (fmt == "onnx" and not has_onnx) or (fmt in ("native", "sklearn") and not has_onnx and "auto" in
                                                    args.ours_formats):
                continue  # nothing to serve, or the same as auto

            def make(fmt=fmt, exe=exe, who=who) -> ServerProcess:
                port = free_port()
                env = {"MODEL_PATH": str(model_dir), "MODEL_NAME": name, "PORT": str(port),
                       "LOG_LEVEL": "warning", "METRICS_PORT": "0"}  # no second port to collide on
                if fmt != "auto":
                    env["MODEL_FORMAT"] = fmt
                return ServerProcess(label=f"{who} {fmt}", argv=[exe, "serve"], env=env, port=port,
                                     ready_path="/health/ready", core=args.server_core,
                                     log_path=str(workdir / f"{model.label}-{who}-{fmt}.log"), nice=args.nice)
            label = f"{who} {model.framework}" if fmt in ("native", "sklearn") else f"{who} {fmt}"
            targets.append(Target(label, "ours", endpoints, make, model.v2_output))
    if "ceiling" in servers and (model_dir / "model.onnx").is_file():
        def make_ceiling() -> ServerProcess:
            port = free_port()
            argv = [sys.executable, "-m", "uvicorn", "server_ceiling_app:app", "--app-dir", str(REPO / "bench"),
                    "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
            return ServerProcess(label="bare ASGI ceiling", argv=argv, env={"MODEL_PATH": str(model_dir)},
                                 port=port, ready_path="/ready", core=args.server_core,
                                 log_path=str(workdir / f"{model.label}-ceiling.log"), nice=args.nice)
        targets.append(Target("bare ASGI ceiling", "ceiling", {"v2": v2_path}, make_ceiling, model.v2_output))
    elif "ceiling" in servers:
        print(f"{model.label}: no model.onnx, so no ceiling (it runs ONNX Runtime)", flush=True)
    if "mlserver" in servers:
        mlserver = ensure_venv(args.mlserver_venv)
        for spec in [s.strip() for s in args.mlserver_batching.split(",") if s.strip()]:
            try:
                size_s, time_s = spec.split(":")
                size, batch_time = int(size_s), float(time_s)
            except ValueError:
                sys.exit(f"--mlserver-batching: {spec!r} is not max_batch_size:max_batch_time_s (e.g. 64:0.01)")

            def make(size=size, batch_time=batch_time) -> ServerProcess:
                return mlserver_process(mlserver, workdir, model, size, batch_time, args.mlserver_parallel_workers,
                                        args.server_core, args.nice)
            targets.append(Target(f"MLServer {size}/{batch_time * 1000:g}ms", "mlserver", {"v2": v2_path}, make,
                                  model.mlserver_output()))
    if not targets:
        sys.exit("--servers chose nothing to run")
    return targets


# ---------------------------------------------------------------- timing

def write_bodies(workdir: Path, model: BenchModel, row: np.ndarray, output: str) -> tuple[dict, dict]:
    """wrk's POST bodies per endpoint, and the JSON header length of the binary one."""
    stem = workdir / f"body-{model.label}-{output}".replace(":", "-")
    bodies = {"v2": stem.with_suffix(".v2.json"), "predict": stem.with_suffix(".predict.json"),
              "v2bin": stem.with_suffix(".v2.bin")}
    bodies["v2"].write_bytes(server_models.v2_body(row, output))
    bodies["predict"].write_bytes(server_models.predict_body(row))
    binary, json_length = server_models.v2_binary_body(row, output)
    bodies["v2bin"].write_bytes(binary)
    return bodies, {"v2bin": json_length}


def time_target(target: Target, round_no: int, args, model: BenchModel, rows, expected, workdir: Path,
                connections: list[int], answers: dict, ready_times: dict) -> list[Run]:
    bodies, json_lengths = write_bodies(workdir, model, rows[0], target.v2_output)
    server = target.make()
    print(f"[{model.label} round {round_no}] starting {target.label} ...", flush=True)
    ready_s = server.start(args.ready_timeout)
    ready_times.setdefault(target.label, []).append(ready_s)
    runs = []
    try:
        check_answers(target, server.port, model, rows, expected, args.tolerance, answers)
        for endpoint, path in target.endpoints.items():
            url = f"http://127.0.0.1:{server.port}{path}"
            if args.warmup > 0:
                run_wrk(url, bodies[endpoint], max(connections), args.warmup, args.load_core, nice=args.nice,
                        json_length=json_lengths.get(endpoint))
            for conns in connections:
                load1 = os.getloadavg()[0]
                cpu0, busy0, t0 = (tree_cpu_seconds(server.proc.pid), core_busy_seconds(args.server_core),
                                   time.monotonic())
                with TreeSampler(server.proc.pid) as sampler:
                    result: LoadResult = run_wrk(url, bodies[endpoint], conns, args.duration, args.load_core,
                                                  nice=args.nice, json_length=json_lengths.get(endpoint))
                wall = time.monotonic() - t0
                cpu_share = (tree_cpu_seconds(server.proc.pid) - cpu0) / wall
                other_share = max(0.0, (core_busy_seconds(args.server_core) - busy0) / wall - cpu_share)
                run = Run(model.label, round_no, target.label, target.kind, endpoint, conns, result.rps, result.p50_ms,
                          result.p99_ms, result.errors, cpu_share, other_share, result.wrk_cpu_share,
                          sampler.peak_rss / 2**20, load1)
                runs.append(run)
                flag = f"  ERRORS {result.errors}" if result.error_count else ""
                print(f"  {target.label:<22} {endpoint:<8} c={conns:<3} {result.rps:>9,.0f} rps  "
                      f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                      f"cpu {cpu_share:4.0%} (other {other_share:4.0%}, wrk {result.wrk_cpu_share:4.0%})  rss {run.peak_rss_mb:5.0f} MB  load {load1:.2f}{flag}",
                      flush=True)
    finally:
        server.stop()
    return runs


def summarize(runs: list[Run]) -> dict:
    cells: dict[tuple, list[Run]] = {}
    for r in runs:
        cells.setdefault((r.server, r.kind, r.endpoint, r.connections), []).append(r)
    summary = {}
    for key, rs in cells.items():
        summary[key] = {
            "rps": statistics.median(r.rps for r in rs),
            "rps_min": min(r.rps for r in rs), "rps_max": max(r.rps for r in rs),
            "p50_ms": statistics.median(r.p50_ms for r in rs),
            "p99_ms": statistics.median(r.p99_ms for r in rs),
            "errors": sum(sum(r.errors.values()) for r in rs),
            "cpu": statistics.mean(r.server_cpu_share for r in rs),
            "wrk_cpu": statistics.mean(r.wrk_cpu_share for r in rs),
            "other_cpu": statistics.mean(r.core_other_share for r in rs),
            "peak_rss_mb": max(r.peak_rss_mb for r in rs),
            "rounds": len(rs),
        }
    return summary


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(summary: dict, ready_times: dict, connections: list[int]) -> list[str]:
    lines = ["", ("| server | endpoint | conns | rps (median) | rps range | p50 ms | p99 ms | server CPU | other on its core | wrk CPU | "
                 "peak RSS MB | non-2xx/socket errors |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (server, _kind, endpoint, conns), s in sorted(summary.items(), key=lambda kv: (kv[0][1] != "ours",
                                                                                       kv[0][0], kv[0][2],
                                                                                       kv[0][3])):
        lines.append(f"| {server} | {endpoint} | {conns} | {s['rps']:,.0f} | {s['rps_min']:,.0f}–{s['rps_max']:,.0f} "
                     f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu']:.0%} | {s['other_cpu']:.0%} | {s['wrk_cpu']:.0%} | {s['peak_rss_mb']:.0f} "
                     f"| {s['errors']} |")
    lines.append("")
    for label, times in ready_times.items():
        lines.append(f"start to ready, {label}: median {statistics.median(times):.2f} s, max {max(times):.2f} s "
                     f"over {len(times)} starts")
    top = max(connections)
    ml = {k: v for k, v in summary.items() if k[1] == "mlserver" and k[3] == top}
    ours = {k: v for k, v in summary.items() if k[1] == "ours" and k[3] == top}
    if ml and ours:
        best_key = max(ml, key=lambda k: ml[k]["rps"])
        best = ml[best_key]
        lines.append("")
        lines.append(f"MLServer best at {top} connections: {best_key[0]} ({best['rps']:,.0f} rps, "
                     f"p99 {best['p99_ms']:.2f} ms)")
        for (server, _kind, endpoint, _c), s in sorted(ours.items()):
            rps_ratio = s["rps"] / best["rps"]
            p99_ratio = s["p99_ms"] / best["p99_ms"]
            lines.append(f"{server} {endpoint} / MLServer best, {top} connections: rps x{rps_ratio:.2f} "
                         f"({verdict(rps_ratio >= TARGET_RPS_RATIO)} >= {TARGET_RPS_RATIO:g}x), p99 x{p99_ratio:.3f} "
                         f"({verdict(p99_ratio <= TARGET_P99_RATIO)} <= {TARGET_P99_RATIO:g}x)")
    ceiling = next((v for k, v in summary.items() if k[1] == "ceiling" and k[3] == top), None)
    if ceiling and ours:
        for (server, _kind, endpoint, _c), s in sorted(ours.items()):
            share = s["rps"] / ceiling["rps"]
            target = TARGET_CEILING_SHARE.get(endpoint) if server == "ours auto" else None
            judged = f" ({verdict(share >= target)} >= {target:.0%})" if target else ""
            lines.append(f"{server} {endpoint} reaches {share:.0%} of the bare ASGI ceiling's rps "
                         f"({ceiling['rps']:,.0f}) at {top} connections{judged}")
    for label, times in ready_times.items():
        if label.startswith("ours"):
            lines.append(f"{label} start to ready (max) {max(times):.2f} s "
                         f"({verdict(max(times) <= TARGET_READY_S)} <= {TARGET_READY_S:g} s)")
    for (server, kind, endpoint, conns), s in sorted(summary.items()):
        if kind == "ours" and conns == top:
            lines.append(f"{server} {endpoint} peak RSS under load {s['peak_rss_mb']:.0f} MB "
                         f"({verdict(s['peak_rss_mb'] <= TARGET_RSS_MB)} <= {TARGET_RSS_MB:g} MB)")
    return lines


def header(args) -> list[str]:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False,
                            capture_output=True, text=True).stdout.strip()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    return [
        (f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, commit {commit}, {platform.node()}, "
        f"{os.cpu_count()} cores ({cpu}), load average {os.getloadavg()[0]:.2f}"),
        (f"servers pinned to core {args.server_core}, wrk -t1 pinned to core {args.load_core}; "
        f"{args.rounds} rounds x {args.duration:g} s per run, {args.warmup:g} s warm-up per endpoint; "
        f"MLServer {MLSERVER_VERSION}, parallel_workers {args.mlserver_parallel_workers}; nice {args.nice:+d}"),
    ]


def bench_models(args, workdir: Path) -> list[BenchModel]:
    if args.model_dir is not None:
        return [server_models.load(args.model_dir.name, args.model_dir.resolve())]
    specs = [m.strip() for m in args.models.split(",") if m.strip()]
    return [server_models.load(spec, server_models.train(mlserving_executable(args), workdir, spec)) for spec in specs]


def main(argv=None) -> int:
    args = parse_args(argv)
    require_tools()
    if os.cpu_count() < 2 or args.server_core == args.load_core:
        sys.exit("the benchmark needs two distinct cores: --server-core and --load-core")
    os.sched_setaffinity(0, {args.load_core})  # keep this script's own polling off the server's core
    connections = [int(c) for c in args.connections.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="mlserving-bench-"))
    models = bench_models(args, workdir)
    lines = header(args)
    print("\n".join(lines), flush=True)

    runs: list[Run] = []
    answers: dict = {}
    total_errors = 0
    for model in models:
        rows, expected = server_models.sample_rows(model)
        targets = build_targets(args, workdir, model)
        print(model.describe(), flush=True)
        print(f"sample rows' answers ({model.framework}'s own): {np.round(expected, 6).tolist()}", flush=True)
        model_runs: list[Run] = []
        ready_times: dict[str, list[float]] = {}
        try:
            for round_no in range(1, args.rounds + 1):
                for target in targets:
                    model_runs += time_target(target, round_no, args, model, rows, expected, workdir, connections,
                                              answers, ready_times)
        except RuntimeError as exc:  # a server that fails to start, answers wrong, or wrk failing
            print(f"benchmark stopped: {exc}", file=sys.stderr)
            return 2
        values = np.array([v for k, v in answers.items() if k[0] == model.label])
        spread = float(np.abs(values.max(axis=0) - values.min(axis=0)).max()) if len(values) else 0.0
        summary = summarize(model_runs)
        lines += ["", f"## {model.describe()}",
                  (f"correctness: every server and endpoint within {args.tolerance:g} of {model.framework}'s own "
                   f"answers on {len(rows)} rows; largest difference between servers {spread:.1e}")]
        lines += report(summary, ready_times, connections)
        total_errors += sum(s["errors"] for s in summary.values())
        runs += model_runs
    if total_errors:
        lines.append(f"WARNING: wrk counted {total_errors} non-2xx responses or socket errors (see the tables)")
    print("\n".join(lines[2:]))

    out = args.json_out or REPO / "bench" / "results" / f"server_vs_mlserver-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"header": lines[:2], "runs": [asdict(r) for r in runs], "report": lines}, indent=2))
    print(f"\nfigures written to {out}; server logs in {workdir}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
