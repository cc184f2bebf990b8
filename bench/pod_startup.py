"""Server start-up on the real node: container process start to readiness, over N pods, beside the
same server started as a host process, and the image's size as containerd reports it.

    sudo flock /tmp/mlserving-real-node.lock .venv/bin/python bench/pod_startup.py --pods 5

Needs the real node up (hack/node/up.sh) with the server image imported (hack/images/build-all.sh
--import). One pod at a time on an otherwise idle node, each a bare Pod made from the pod template
the operator renders for a single-variant ModelDeployment (same image, probes, resources, security
context), so what is measured is what an HPA scale-up waits for:

- process start: the server logs ``process_age_s`` (seconds since its own process started, from
  /proc) in its "model ready" line; minus that from the line's millisecond ``ts`` gives the
  container's process start;
- ready: when a watch on the pod first shows its Ready condition True (the host's clock is the
  node's clock: the node is this machine).

Host baseline: ``mlserving serve`` of the same model version (trained here with the same seed),
from spawn to the first 200 on /health/ready, polled every 10 ms.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
NAMESPACE = "mlserving-bench"


def node_env() -> dict[str, str]:
    out = subprocess.run(["bash", str(REPO / "hack" / "node" / "env.sh")], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


class Kube:
    def __init__(self, env: dict[str, str]):
        self.kubectl = str(pathlib.Path(env["K8S_BIN"]) / "kubectl")
        self.env = {**os.environ, "KUBECONFIG": env["KUBECONFIG"]}

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run([self.kubectl, *args], input=input, capture_output=True, text=True, env=self.env,
                              timeout=180, check=False)
        if check and proc.returncode != 0:
            sys.exit(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def apply(self, obj: dict) -> None:
        self("apply", "-f", "-", input=json.dumps(obj))


def rendered_pod_template() -> dict:
    from mlserving.operator.children import desired_children
    from mlserving.operator.settings import OperatorSettings

    md = yaml.safe_load((REPO / "examples" / "fraud-single.yaml").read_text())
    md["metadata"].update(namespace=NAMESPACE, generation=1, uid="00000000-0000-4000-8000-00000000b001")
    children = desired_children(md, OperatorSettings.from_env({}))
    deployment = next(c for c in children if c["kind"] == "Deployment")
    return deployment["spec"]["template"]


def image_size_mib(env: dict[str, str], ref: str) -> float | None:
    proc = subprocess.run(["ctr", "--address", env["CONTAINERD_SOCK"], "-n", "k8s.io", "images", "ls"],
                          capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        cols = line.split()
        if cols and cols[0] == ref:
            # REF TYPE DIGEST SIZE UNIT PLATFORMS LABELS
            value, unit = float(cols[3]), cols[4]
            return value * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1)
    return None


def watch_ready(kube: Kube, name: str, timeout_s: float) -> float:
    """Epoch seconds at which a watch first showed the pod Ready."""
    proc = subprocess.Popen([kube.kubectl, "get", "pod", name, "-n", NAMESPACE, "--watch", "--output-watch-events",
                             "-o", "json"], stdout=subprocess.PIPE, text=True, env=kube.env)
    ready_at: list[float] = []

    def read() -> None:
        buf = ""
        for line in proc.stdout:  # one event a line (kubectl 1.35), or indented over several
            buf += line
            try:
                event = json.loads(buf)
            except json.JSONDecodeError:
                continue  # not complete yet
            buf = ""
            conditions = (event.get("object", {}).get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                ready_at.append(time.time())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    proc.kill()
    proc.wait()
    if not ready_at:
        sys.exit(f"pod {name} not Ready within {timeout_s:.0f} s")
    return ready_at[0]


def model_ready_line(kube: Kube, name: str) -> dict:
    for line in kube("logs", name, "-n", NAMESPACE, "-c", "server").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("msg") == "model ready":
            return record
    sys.exit(f"pod {name}: no 'model ready' line in its log")


def epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def one_pod(kube: Kube, template: dict, index: int) -> dict:
    name = f"startup-{index}"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "mlserving-bench"}},
           "spec": copy.deepcopy(template["spec"])}
    created = time.time()
    kube.apply(pod)
    ready = watch_ready(kube, name, 180)
    line = model_ready_line(kube, name)
    process_start = epoch(line["ts"]) - line["process_age_s"]
    kube("delete", "pod", name, "-n", NAMESPACE, "--wait=true", "--grace-period=5")
    return {"pod": name, "create_to_ready_s": ready - created, "process_to_ready_s": ready - process_start,
            "process_to_model_ready_s": line["process_age_s"]}


def host_startup_s(runs: int) -> list[float]:
    mlserving = pathlib.Path(sys.executable).parent / "mlserving"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(mlserving), "train", "--model", "fraud", "--version", "1.0.0", "--out", tmp, "--seed", "1"],
                       check=True, capture_output=True)
        for _ in range(runs):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            start = time.time()
            proc = subprocess.Popen([str(mlserving), "serve", "--model-path", f"{tmp}/fraud/1.0.0", "--port", str(port),
                                     "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                while True:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
                            if r.status == 200:
                                break
                    except (urllib.error.URLError, OSError):
                        pass
                    if time.time() - start > 120:
                        sys.exit("host server not ready within 120 s")
                    time.sleep(0.01)
                out.append(time.time() - start)
            finally:
                proc.terminate()
                proc.wait(20)
    return out


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5, help="pods started one after another (at least 5)")
    args = parser.parse_args()
    if args.pods < 5:
        parser.error("--pods: at least 5")
    if not shutil.which("ctr"):
        sys.exit("ctr not found: the real node's containerd client is needed")
    env = node_env()
    kube = Kube(env)
    template = rendered_pod_template()
    image = template["spec"]["containers"][0]["image"]
    size = image_size_mib(env, image)
    if size is None:
        sys.exit(f"{image} is not in the node's containerd: run hack/images/build-all.sh --import")
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    try:
        pods = [one_pod(kube, template, i) for i in range(args.pods)]
    finally:
        kube("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    host = host_startup_s(args.pods)
    for p in pods:
        print(f"{p['pod']}: process start -> model ready {p['process_to_model_ready_s']:.2f} s, "
              f"process start -> pod Ready {p['process_to_ready_s']:.2f} s, created -> Ready {p['create_to_ready_s']:.2f} s")
    process_to_ready = [p["process_to_ready_s"] for p in pods]
    print(f"server image {image}: {size:.1f} MiB (ctr -n k8s.io images ls)")
    print(f"pod, container process start -> Ready ({args.pods} pods): {summary(process_to_ready)}")
    print(f"pod, created -> Ready ({args.pods} pods): {summary([p['create_to_ready_s'] for p in pods])}")
    print(f"host process, spawn -> /health/ready 200 ({len(host)} runs): {summary(host)}")
    print(f"ratio pod/host (medians): {statistics.median(process_to_ready) / statistics.median(host):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
