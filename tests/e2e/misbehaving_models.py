"""Model versions that really misbehave, built by the test and served to the cluster from a volume.

Each is a genuine fraud classifier (``mlserving train``'s logistic regression, small enough for a
ConfigMap) whose ONNX graph the test then changes:

- ``slow``: the answer is the trained model's, but every call also multiplies two n x n matrices
  (n measured so that a call takes ``SLOW_CALL_S`` here) that depend on the input (so onnxruntime
  cannot fold them away) and adds 0 x their sum to the probabilities: the same decisions, many
  times slower;
- ``flipped``: the probability columns are swapped, so every decision is the opposite one.

The versions are tar archives in one ConfigMap, mounted into a plain ``python3 -m http.server``
pod (the server image's own python); a variant's ``storageUri`` then points at
``http://<MODEL_FILES>.<ns>.svc.cluster.local:8080/<model>-<version>.tar.gz`` and the operator's
``fetch-model`` init container downloads it, as for any https model.
"""

from __future__ import annotations

import base64
import io
import json
import pathlib
import tarfile
import tempfile
import timeit

import numpy as np
from providers.base import project_images

MODEL_FILES = "model-files"
MODEL_FILES_PORT = 8080
# A slow call takes about this long on one core of the machine the pods run on (the matrix size is
# measured for it, since machines of one kind differ several times in speed), so a new version's
# p99 is far above any limit a fast model is near, and a few requests a second still fit its CPU.
SLOW_CALL_S = 0.08
KINDS = ("slow", "flipped")


def _base_version(workdir: pathlib.Path, model: str) -> pathlib.Path:
    from mlserving.training.train import train_version

    return train_version(model, "base", workdir, algorithm="logistic_regression", samples=2000, seed=7,
                         log=lambda *_: None)


def slow_matrix_size(seconds: float = SLOW_CALL_S) -> int:
    """The n whose n x n float32 product takes about ``seconds`` in onnxruntime on one thread here."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    n = 640
    matrix = numpy_helper.from_array(np.full((n, n), 1e-3, dtype=np.float32), "m")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["m", "s"], ["ms"]), helper.make_node("MatMul", ["ms", "m"], ["p"])], "calibrate",
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [n, n])], [matrix])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"s": np.array(1.0, dtype=np.float32)}
    session.run(None, feed)
    took = min(timeit.repeat(lambda: session.run(None, feed), number=1, repeat=3))
    return int(min(max(n * (seconds / took) ** (1 / 3), 480), 2048))


def _slow(graph, probabilities: str, size: int) -> None:
    from onnx import helper, numpy_helper

    matrix = numpy_helper.from_array(np.full((size, size), 1e-3, dtype=np.float32), "slow_matrix")
    zero = numpy_helper.from_array(np.zeros((), dtype=np.float32), "slow_zero")
    graph.initializer.extend([matrix, zero])
    x = graph.input[0].name
    graph.node.extend([
        helper.make_node("Cast", [x], ["slow_x"], to=1),  # float32, whatever the model's input type
        helper.make_node("ReduceSum", ["slow_x"], ["slow_s"], keepdims=0),
        helper.make_node("Mul", ["slow_matrix", "slow_s"], ["slow_scaled"]),
        helper.make_node("MatMul", ["slow_scaled", "slow_matrix"], ["slow_product"]),
        helper.make_node("ReduceSum", ["slow_product"], ["slow_total"], keepdims=0),
        helper.make_node("Mul", ["slow_total", "slow_zero"], ["slow_nothing"]),
        helper.make_node("Cast", ["slow_nothing"], ["slow_nothing_typed"], to=_elem_type(graph, probabilities)),
        helper.make_node("Add", [probabilities + "_raw", "slow_nothing_typed"], [probabilities]),
    ])


def _flipped(graph, probabilities: str) -> None:
    from onnx import helper, numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.array([1, 0], dtype=np.int64), "flip_order"))
    graph.node.append(helper.make_node("Gather", [probabilities + "_raw", "flip_order"], [probabilities], axis=1))


def _elem_type(graph, name: str) -> int:
    return next(o.type.tensor_type.elem_type for o in graph.output if o.name == name)


def misbehaving_version(base: pathlib.Path, out: pathlib.Path, model: str, version: str, kind: str,
                        slow_size: int = 640) -> pathlib.Path:
    """A copy of the trained ``base`` version as ``version``, its ONNX graph changed as ``kind`` says
    (``slow_size``: the matrix of ``slow``)."""
    import onnx
    from mlserving.training.registry import METADATA_FILE, ONNX_FILE, write_version

    metadata = json.loads((base / METADATA_FILE).read_text())
    proto = onnx.load(str(base / ONNX_FILE))
    probabilities = (metadata.get("onnx") or {}).get("probabilities_output", "probabilities")
    for node in proto.graph.node:  # the trained graph now writes <probabilities>_raw
        node.output[:] = [probabilities + "_raw" if o == probabilities else o for o in node.output]
    edits = {"slow": lambda graph, name: _slow(graph, name, slow_size), "flipped": _flipped}
    edits[kind](proto.graph, probabilities)
    onnx.checker.check_model(proto)
    metadata.pop("artifacts", None)
    metadata.update(version=version, description=f"test build: {kind} copy of a trained fraud model")
    return write_version(out, model, version, {ONNX_FILE: proto.SerializeToString()}, metadata)


def archive(version_dir: pathlib.Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(version_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return buf.getvalue()


def archive_name(model: str, version: str) -> str:
    return f"{model}-{version}.tar.gz"


def build_archives(model: str, versions: dict[str, str]) -> dict[str, bytes]:
    """archive name -> tar.gz bytes, for ``versions`` (version -> kind)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        base = _base_version(root / "base", model)
        size = slow_matrix_size() if "slow" in versions.values() else 0
        return {archive_name(model, version): archive(misbehaving_version(base, root / "out", model, version, kind,
                                                                          size))
                for version, kind in versions.items()}


def storage_uri(namespace: str, model: str, version: str) -> str:
    return f"http://{MODEL_FILES}.{namespace}.svc.cluster.local:{MODEL_FILES_PORT}/{archive_name(model, version)}"


def file_server(namespace: str, archives: dict[str, bytes]) -> list[dict]:
    """ConfigMap + Deployment + Service serving ``archives`` over plain HTTP inside the cluster."""
    labels = {"app.kubernetes.io/name": MODEL_FILES}
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                  "runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]},
                  "seccompProfile": {"type": "RuntimeDefault"}}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": MODEL_FILES, "namespace": namespace},
         "binaryData": {name: base64.b64encode(data).decode() for name, data in archives.items()}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": MODEL_FILES, "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 "automountServiceAccountToken": False, "enableServiceLinks": False,
                 "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{
                     "name": "files", "image": project_images()[0].ref, "imagePullPolicy": "IfNotPresent",
                     "command": ["python3", "-m", "http.server", str(MODEL_FILES_PORT), "--directory", "/srv"],
                     "ports": [{"name": "http", "containerPort": MODEL_FILES_PORT}],
                     "readinessProbe": {"tcpSocket": {"port": MODEL_FILES_PORT}, "periodSeconds": 1},
                     "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                   "limits": {"cpu": "200m", "memory": "128Mi"}},
                     "securityContext": restricted,
                     "volumeMounts": [{"name": "files", "mountPath": "/srv", "readOnly": True}],
                 }],
                 "volumes": [{"name": "files", "configMap": {"name": MODEL_FILES}}],
             }}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": MODEL_FILES, "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": MODEL_FILES_PORT,
                                                 "targetPort": MODEL_FILES_PORT}]}},
    ]
