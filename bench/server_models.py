"""The models the server benchmark serves, and what a right answer is for each.

A model is ``ALGORITHM[:DATASET]`` as ``mlserving train`` makes it (``random_forest``,
``xgboost``, ``lightgbm``; datasets ``fraud`` (binary), ``multiclass``, ``regression``), or an
existing version directory. Its own answers come from the framework's own artifact through the
server's native runtime classes, so the check is "what the framework itself predicts".

Answers are compared as one vector per row: binary the positive-class probability, multi-class
every class probability, regression the predicted value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlserving.server.runtime import NATIVE_RUNTIMES, native_artifact
from mlserving.server.tasks import BINARY, MULTICLASS, PROBA_OUTPUT, Task, task_from_metadata

# MLServer's runtime for each framework's artifact, and the v2 output it answers the scores in.
MLSERVER_RUNTIMES = {"sklearn": "mlserver_sklearn.SKLearnModel", "xgboost": "mlserver_xgboost.XGBoostModel",
                     "lightgbm": "mlserver_lightgbm.LightGBMModel"}


@dataclass
class BenchModel:
    label: str
    directory: Path
    name: str
    version: str
    metadata: dict
    task: Task
    framework: str
    native_path: Path
    native: object  # the server's native runtime on the artifact: .predict(X) -> [N, k] or [N]

    @property
    def n_features(self) -> int:
        return int(self.metadata["n_features"])

    @property
    def v2_output(self) -> str:
        """The v2 output holding the scores (ours and MLServer's scikit-learn/XGBoost runtimes)."""
        return PROBA_OUTPUT if self.task.is_classifier else self.task.output_name

    def mlserver_output(self) -> str:
        # MLServer's LightGBM runtime answers Booster.predict (probabilities for classifiers) as "predict".
        return "predict" if self.framework == "lightgbm" else self.v2_output

    def answers(self, X: np.ndarray) -> np.ndarray:
        """The framework's own answer vectors for rows X."""
        return self.vectors(np.asarray(self.native.predict(X.astype(self.native.input_dtype)), dtype=np.float64))

    def vectors(self, out: np.ndarray) -> np.ndarray:
        """[N, k] probabilities or [N] values -> the compared vector per row."""
        out = out.reshape(len(out), -1)
        if self.task.kind == BINARY:
            return out[:, [self.task.positive_index]] if out.shape[1] > 1 else out
        return out

    def score(self, vectors: np.ndarray) -> np.ndarray:
        return vectors.max(axis=1) if self.task.kind == MULTICLASS else vectors[:, 0]

    def describe(self) -> str:
        serving = (self.metadata.get("serving") or {}).get("runtime", "?")
        return (f"{self.label}: {self.framework} {self.task.kind}, {self.n_features} features, "
                f"{self.native_path.name}; our server serves {serving}")


def train(mlserving: str, workdir: Path, spec: str) -> Path:
    algorithm, _, dataset = spec.partition(":")
    dataset = dataset or "fraud"
    name = f"bench-{algorithm.replace('_', '-')}-{dataset}"
    out = workdir / "models"
    cmd = [mlserving, "train", "--model", name, "--version", "1.0.0", "--algorithm", algorithm,
           "--dataset", dataset, "--out", str(out)]
    print("training:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return out / name / "1.0.0"


def load(label: str, directory: Path) -> BenchModel:
    meta_file = directory / "metadata.json"
    if not meta_file.is_file():
        sys.exit(f"{directory}: no metadata.json")
    metadata = json.loads(meta_file.read_text())
    task = task_from_metadata(metadata)
    framework, native = native_artifact(metadata)
    if native is None:
        sys.exit(f"{directory}: no native artifact of framework {framework} (MLServer serves that)")
    path = directory / native
    runtime = NATIVE_RUNTIMES[framework](path, metadata, task)
    return BenchModel(label, directory, str(metadata.get("name")), str(metadata.get("version")), metadata, task,
                      framework, path, runtime)


def sample_rows(model: BenchModel, count: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Rows spread over the score range, as float32 (the dtype trees compare in and v2 sends)."""
    rng = np.random.default_rng(20240601)
    candidates = rng.normal(0.0, 2.0, size=(2000, model.n_features)).astype(np.float32)
    order = np.argsort(model.score(model.answers(candidates)))
    picks = [order[-1], order[int(len(order) * 0.9)], order[len(order) // 2], order[0]][:count]
    rows = candidates[picks]
    return rows, model.answers(rows)


def from_predict(model: BenchModel, body: dict) -> list[float]:
    """/predict's answer as the compared vector."""
    if model.task.kind == BINARY:
        return [float(body["fraud_probability"])]
    if model.task.kind == MULTICLASS:
        return [float(body["probabilities"][str(c)] if str(c) in body["probabilities"] else
                      body["probabilities"][c]) for c in model.task.classes]
    return [float(body["prediction"])]


def from_v2(model: BenchModel, body: dict, wanted: str) -> list[float]:
    """A one-row v2 response's ``wanted`` output as the compared vector."""
    for out in body.get("outputs") or []:
        if out.get("name") == wanted:
            return model.vectors(np.asarray(out["data"], dtype=np.float64).reshape(1, -1))[0].tolist()
    raise ValueError(f"no output {wanted!r} in the v2 response: {str(body)[:500]}")


def from_v2_binary(model: BenchModel, head: bytes, raw: bytes, wanted: str) -> list[float]:
    """The binary tensor extension's answer: outputs' bytes follow the JSON header in order."""
    offset = 0
    for out in json.loads(head)["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        if out["name"] == wanted:
            dtype = {"FP64": "<f8", "FP32": "<f4"}[out["datatype"]]
            values = np.frombuffer(raw[offset:offset + size], dtype).astype(np.float64)
            return model.vectors(values.reshape(1, -1))[0].tolist()
        offset += size
    raise ValueError(f"no binary {wanted!r} in {head!r}")


def predict_body(row: np.ndarray) -> bytes:
    return json.dumps({"features": [float(x) for x in row], "request_id": "bench"}).encode()


def v2_body(row: np.ndarray, output: str) -> bytes:
    return json.dumps({
        "id": "bench",
        "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": [float(x) for x in row]}],
        "outputs": [{"name": output}],
    }).encode()


def v2_binary_body(row: np.ndarray, output: str) -> tuple[bytes, int]:
    """The binary tensor extension's request (what Triton's and KServe's clients send by default):
    the JSON header, then the row's float32 bytes; the scores asked back as raw bytes."""
    head = json.dumps({
        "id": "bench",
        "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32",
                    "parameters": {"binary_data_size": 4 * len(row)}}],
        "outputs": [{"name": output, "parameters": {"binary_data": True}}],
    }).encode()
    return head + row.astype("<f4").tobytes(), len(head)
