"""Our inference server against MLServer 1.7.1 on the same model.joblib, in one invocation.

    .venv/bin/python bench/server_vs_mlserver.py            # trains the default model, ~6 minutes
    .venv/bin/python bench/server_vs_mlserver.py --model-dir models/fraud/1.0.0 --duration 5

Each server is pinned to core 0 with taskset and driven by wrk pinned to core 1 (this script pins
itself to core 1 too). Servers run in turn, A B A B, for --rounds rounds; every start is timed
from spawn to ready, and every server must answer the sample rows with the probabilities the
model itself gives (within --tolerance) before it is timed. See bench/README.md.
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

import joblib
import numpy as np
from server_load import LoadResult, require_tools, run_wrk
from server_mlserver import DEFAULT_VENV, MLSERVER_VERSION, ensure_venv, mlserver_process
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


@dataclass
class Target:
    """One server configuration to time, with the endpoints it is driven on."""

    label: str
    kind: str  # "ours", "mlserver" or "ceiling"
    endpoints: dict[str, str]  # endpoint label -> path
    make: object  # () -> ServerProcess


@dataclass
class Run:
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
    p.add_argument("--model-dir", type=Path,
                   help="a trained version directory holding model.joblib (and metadata.json for our "
                        "server); default: train the default model into a temporary directory")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per timed wrk run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load per endpoint after "
                                                             "each start (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="A B A B rounds (default 2)")
    p.add_argument("--connections", default="16,64", help="comma-separated wrk connection counts")
    p.add_argument("--servers", default="ours,mlserver",
                   help="comma-separated, from ours, mlserver and ceiling (a bare ASGI callable + ONNX Runtime "
                        "on uvicorn: what any server on that stack can reach; needs model.onnx)")
    p.add_argument("--ours-formats", default="auto,sklearn",
                   help="MODEL_FORMAT values our server is timed with; 'auto' leaves it unset (the server "
                        "prefers model.onnx, compiled from the same estimator); default auto,sklearn")
    p.add_argument("--mlserver-batching", default="64:0.01,32:0.005",
                   help="MLServer adaptive batching configs as max_batch_size:max_batch_time_s, comma-separated")
    p.add_argument("--mlserver-parallel-workers", type=int, default=1,
                   help="MLServer parallel_workers (default 1, its own default)")
    p.add_argument("--mlserver-venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--mlserving", default=None, help="the mlserving executable (default: .venv/bin/mlserving)")
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


# ---------------------------------------------------------------- model and sample rows

def prepare_model(args, workdir: Path) -> Path:
    if args.model_dir is not None:
        model_dir = args.model_dir.resolve()
    else:
        out = workdir / "models"
        cmd = [mlserving_executable(args), "train", "--model", "fraud", "--version", "1.0.0", "--out", str(out)]
        print("training the default model:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        model_dir = out / "fraud" / "1.0.0"
    if not (model_dir / "model.joblib").is_file():
        sys.exit(f"--model-dir {model_dir}: no model.joblib in it")
    return model_dir


def model_identity(model_dir: Path) -> tuple[str, str]:
    meta_file = model_dir / "metadata.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        return str(meta.get("name", "fraud")), str(meta.get("version", "1.0.0"))
    return "fraud", "1.0.0"


def sample_rows(estimator, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows spread over the probability range, as float32 (the dtype trees compare in and v2 sends)."""
    rng = np.random.default_rng(20240601)
    candidates = rng.normal(0.0, 2.0, size=(2000, n_features)).astype(np.float32)
    probs = estimator.predict_proba(candidates)[:, 1]
    order = np.argsort(probs)
    picks = [order[-1], order[int(len(order) * 0.9)], order[len(order) // 2], order[0]]
    rows = candidates[picks]
    return rows, estimator.predict_proba(rows)[:, 1]


def as_json_floats(row: np.ndarray) -> list[float]:
    return [float(x) for x in row]  # exact float64 images of the float32 values


def predict_body(row: np.ndarray) -> bytes:
    return json.dumps({"features": as_json_floats(row), "request_id": "bench"}).encode()


def v2_body(row: np.ndarray) -> bytes:
    return json.dumps({
        "id": "bench",
        "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": as_json_floats(row)}],
        "outputs": [{"name": "predict_proba"}],
    }).encode()


def v2_probability(response: dict) -> float:
    """The positive-class probability of a one-row v2 response (MLServer names it predict_proba)."""
    outputs = response.get("outputs") or []
    for out in outputs:
        if "prob" in out.get("name", ""):
            data = out["data"]
            return float(data[-1] if out.get("shape", [len(data)])[-1] == 2 else data[0])
    raise ValueError(f"no probability output in the v2 response: {response}")


# ---------------------------------------------------------------- correctness gate

def check_answers(target: Target, port: int, rows: np.ndarray, expected: np.ndarray, tolerance: float,
                  answers: dict) -> None:
    for endpoint, path in target.endpoints.items():
        got = []
        for row in rows:
            if endpoint == "predict":
                status, raw = http_post_json(port, path, predict_body(row))
                value = json.loads(raw)["fraud_probability"] if status == 200 else None
            else:
                status, raw = http_post_json(port, path, v2_body(row))
                value = v2_probability(json.loads(raw)) if status == 200 else None
            if status != 200:
                raise RuntimeError(f"{target.label} {path}: HTTP {status}: {raw[:500]!r}; refusing to time it")
            got.append(float(value))
        diff = np.abs(np.array(got) - expected)
        if diff.max() > tolerance:
            raise RuntimeError(f"{target.label} {path} answers {got}, the model gives {expected.tolist()} "
                               f"(max |diff| {diff.max():.2e} > {tolerance:g}); refusing to time it")
        answers[(target.label, endpoint)] = got


# ---------------------------------------------------------------- targets

def mlserving_executable(args) -> str:
    if args.mlserving:
        return args.mlserving
    local = REPO / ".venv" / "bin" / "mlserving"
    return str(local) if local.exists() else (shutil.which("mlserving") or "mlserving")


def build_targets(args, workdir: Path, model_dir: Path, name: str, version: str) -> list[Target]:
    targets = []
    servers = {s.strip() for s in args.servers.split(",") if s.strip()}
    unknown = servers - {"ours", "mlserver", "ceiling"}
    if unknown:
        sys.exit(f"--servers: unknown {sorted(unknown)}; the rule: a comma-separated subset of ours,mlserver,ceiling")
    v2_path = f"/v2/models/{name}/infer"
    if "ours" in servers:
        exe = mlserving_executable(args)
        for fmt in [f.strip() for f in args.ours_formats.split(",") if f.strip()]:
            if fmt not in ("auto", "onnx", "sklearn"):
                sys.exit(f"--ours-formats: {fmt!r} is not one of auto, onnx, sklearn")

            def make(fmt=fmt, exe=exe) -> ServerProcess:
                port = free_port()
                env = {"MODEL_PATH": str(model_dir), "MODEL_NAME": name, "PORT": str(port),
                       "LOG_LEVEL": "warning"}
                if fmt != "auto":
                    env["MODEL_FORMAT"] = fmt
                return ServerProcess(label=f"ours {fmt}", argv=[exe, "serve"], env=env, port=port,
                                     ready_path="/health/ready", core=args.server_core,
                                     log_path=str(workdir / f"ours-{fmt}.log"), nice=args.nice)
            targets.append(Target(f"ours {fmt}", "ours", {"v2": v2_path, "predict": "/predict"}, make))
    if "ceiling" in servers:
        if not (model_dir / "model.onnx").is_file():
            sys.exit(f"--servers ceiling needs {model_dir / 'model.onnx'}")

        def make_ceiling() -> ServerProcess:
            port = free_port()
            argv = [sys.executable, "-m", "uvicorn", "server_ceiling_app:app", "--app-dir", str(REPO / "bench"),
                    "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
            return ServerProcess(label="bare ASGI ceiling", argv=argv, env={"MODEL_PATH": str(model_dir)},
                                 port=port, ready_path="/ready", core=args.server_core,
                                 log_path=str(workdir / "ceiling.log"), nice=args.nice)
        targets.append(Target("bare ASGI ceiling", "ceiling", {"v2": v2_path}, make_ceiling))
    if "mlserver" in servers:
        mlserver = ensure_venv(args.mlserver_venv)
        for spec in [s.strip() for s in args.mlserver_batching.split(",") if s.strip()]:
            try:
                size_s, time_s = spec.split(":")
                size, batch_time = int(size_s), float(time_s)
            except ValueError:
                sys.exit(f"--mlserver-batching: {spec!r} is not max_batch_size:max_batch_time_s (e.g. 64:0.01)")

            def make(size=size, batch_time=batch_time) -> ServerProcess:
                return mlserver_process(mlserver, workdir, name, version, model_dir / "model.joblib", size,
                                        batch_time, args.mlserver_parallel_workers, args.server_core,
                                        args.nice)
            targets.append(Target(f"MLServer {size}/{batch_time * 1000:g}ms", "mlserver", {"v2": v2_path}, make))
    if not targets:
        sys.exit("--servers chose nothing to run")
    return targets


# ---------------------------------------------------------------- timing

def time_target(target: Target, round_no: int, args, rows, expected, bodies: dict, connections: list[int],
                answers: dict, ready_times: dict) -> list[Run]:
    server = target.make()
    print(f"[round {round_no}] starting {target.label} ...", flush=True)
    ready_s = server.start(args.ready_timeout)
    ready_times.setdefault(target.label, []).append(ready_s)
    runs = []
    try:
        check_answers(target, server.port, rows, expected, args.tolerance, answers)
        for endpoint, path in target.endpoints.items():
            url = f"http://127.0.0.1:{server.port}{path}"
            if args.warmup > 0:
                run_wrk(url, bodies[endpoint], max(connections), args.warmup, args.load_core, nice=args.nice)
            for conns in connections:
                load1 = os.getloadavg()[0]
                cpu0, busy0, t0 = (tree_cpu_seconds(server.proc.pid), core_busy_seconds(args.server_core),
                                   time.monotonic())
                with TreeSampler(server.proc.pid) as sampler:
                    result: LoadResult = run_wrk(url, bodies[endpoint], conns, args.duration, args.load_core,
                                                  nice=args.nice)
                wall = time.monotonic() - t0
                cpu_share = (tree_cpu_seconds(server.proc.pid) - cpu0) / wall
                other_share = max(0.0, (core_busy_seconds(args.server_core) - busy0) / wall - cpu_share)
                run = Run(round_no, target.label, target.kind, endpoint, conns, result.rps, result.p50_ms,
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
            lines.append(f"{server} {endpoint} reaches {s['rps'] / ceiling['rps']:.0%} of the bare ASGI ceiling's rps "
                         f"({ceiling['rps']:,.0f}) at {top} connections")
    for label, times in ready_times.items():
        if label.startswith("ours"):
            lines.append(f"{label} start to ready (max) {max(times):.2f} s "
                         f"({verdict(max(times) <= TARGET_READY_S)} <= {TARGET_READY_S:g} s)")
    for (server, kind, endpoint, conns), s in sorted(summary.items()):
        if kind == "ours" and conns == top:
            lines.append(f"{server} {endpoint} peak RSS under load {s['peak_rss_mb']:.0f} MB "
                         f"({verdict(s['peak_rss_mb'] <= TARGET_RSS_MB)} <= {TARGET_RSS_MB:g} MB)")
    return lines


def header(args, model_dir: Path, estimator, name: str, version: str) -> list[str]:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False,
                            capture_output=True, text=True).stdout.strip()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    params = {k: estimator.get_params().get(k) for k in ("n_estimators", "max_depth", "n_jobs")}
    return [
        (f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, commit {commit}, {platform.node()}, "
        f"{os.cpu_count()} cores ({cpu}), load average {os.getloadavg()[0]:.2f}"),
        (f"model {name} {version} from {model_dir}: {type(estimator).__name__} {params}, "
        f"{estimator.n_features_in_} features"),
        (f"servers pinned to core {args.server_core}, wrk -t1 pinned to core {args.load_core}; "
        f"{args.rounds} rounds x {args.duration:g} s per run, {args.warmup:g} s warm-up per endpoint; "
        f"MLServer {MLSERVER_VERSION}, parallel_workers {args.mlserver_parallel_workers}; nice {args.nice:+d}"),
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    require_tools()
    if os.cpu_count() < 2 or args.server_core == args.load_core:
        sys.exit("the benchmark needs two distinct cores: --server-core and --load-core")
    os.sched_setaffinity(0, {args.load_core})  # keep this script's own polling off the server's core
    connections = [int(c) for c in args.connections.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="mlserving-bench-"))
    model_dir = prepare_model(args, workdir)
    name, version = model_identity(model_dir)
    estimator = joblib.load(model_dir / "model.joblib")
    rows, expected = sample_rows(estimator, estimator.n_features_in_)
    top_row = rows[0]
    bodies = {"v2": workdir / "body-v2.json", "predict": workdir / "body-predict.json"}
    bodies["v2"].write_bytes(v2_body(top_row))
    bodies["predict"].write_bytes(predict_body(top_row))
    targets = build_targets(args, workdir, model_dir, name, version)

    lines = header(args, model_dir, estimator, name, version)
    print("\n".join(lines), flush=True)
    print(f"sample rows' fraud probabilities (the model's own): {np.round(expected, 6).tolist()}", flush=True)

    runs: list[Run] = []
    answers: dict = {}
    ready_times: dict[str, list[float]] = {}
    try:
        for round_no in range(1, args.rounds + 1):
            for target in targets:
                runs += time_target(target, round_no, args, rows, expected, bodies, connections, answers,
                                    ready_times)
    except RuntimeError as exc:  # a server that fails to start, answers wrong, or wrk failing
        print(f"benchmark stopped: {exc}", file=sys.stderr)
        return 2

    values = np.array(list(answers.values()))
    spread = float((values.max(axis=0) - values.min(axis=0)).max()) if len(values) else 0.0
    summary = summarize(runs)
    lines += [(f"correctness: every server and endpoint within {args.tolerance:g} of the model's own "
              f"probabilities on {len(rows)} rows; largest difference between servers {spread:.1e}")]
    lines += report(summary, ready_times, connections)
    total_errors = sum(s["errors"] for s in summary.values())
    if total_errors:
        lines.append(f"WARNING: wrk counted {total_errors} non-2xx responses or socket errors (see the table)")
    print("\n".join(lines[3:]))

    out = args.json_out or REPO / "bench" / "results" / f"server_vs_mlserver-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"header": lines[:3], "runs": [asdict(r) for r in runs],
                               "ready_times_s": ready_times, "report": lines}, indent=2))
    print(f"\nfigures written to {out}; server logs in {workdir}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
