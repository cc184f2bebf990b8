"""Model runtimes: the compiled ONNX model (preferred) or the scikit-learn estimator.

Both answer ``predict_proba(X) -> ndarray[N, n_classes]`` for a float64 array of shape [N, F].
"""

import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("mlserving.server.runtime")


class ModelLoadError(Exception):
    """The version directory cannot be served; the message says why."""


class OnnxRuntimeModel:
    format = "onnx"

    def __init__(self, path: Path, metadata: dict):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One request is a few microseconds of work: thread pools only add handoffs.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise ModelLoadError(f"{path}: onnxruntime cannot load it: {exc}") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float64 if model_input.type == "tensor(double)" else np.float32
        wanted = (metadata.get("onnx") or {}).get("probabilities_output", "probabilities")
        names = [o.name for o in self.session.get_outputs()]
        if wanted not in names:
            raise ModelLoadError(f"{path}: no output {wanted!r} (outputs: {names})")
        self.output_names = [wanted]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.session.run(self.output_names, {self.input_name: X.astype(self.input_dtype, copy=False)})[0]


class SklearnModel:
    format = "sklearn"
    input_dtype = np.float64

    def __init__(self, path: Path, metadata: dict):
        import joblib

        try:
            self.estimator = joblib.load(path)
        except Exception as exc:  # noqa: BLE001 - unpickling raises anything
            raise ModelLoadError(f"{path}: joblib cannot load it: {exc}") from None
        if not hasattr(self.estimator, "predict_proba"):
            raise ModelLoadError(f"{path}: {type(self.estimator).__name__} has no predict_proba")
        if "n_jobs" in getattr(self.estimator, "get_params", dict)():
            # Rows arrive a few at a time; joblib's worker pool would cost more than it saves.
            self.estimator.set_params(n_jobs=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(X)


def choose_artifact(directory: Path, metadata: dict, model_format: str, allow_pickle: bool):
    """Picks the runtime class and file: ONNX when present unless MODEL_FORMAT says otherwise."""
    from mlserving.training.registry import JOBLIB_FILE, ONNX_FILE

    artifacts = metadata["artifacts"]
    has_onnx, has_joblib = ONNX_FILE in artifacts, JOBLIB_FILE in artifacts
    if model_format == "onnx" or (model_format == "auto" and has_onnx):
        if not has_onnx:
            raise ModelLoadError(f"MODEL_FORMAT=onnx but {directory} has no {ONNX_FILE}")
        return OnnxRuntimeModel, directory / ONNX_FILE
    if not has_joblib:
        raise ModelLoadError(f"{directory} has no {JOBLIB_FILE} and no {ONNX_FILE}")
    if not allow_pickle:
        raise ModelLoadError(f"ALLOW_PICKLE=false refuses {JOBLIB_FILE}, and {directory} has no usable {ONNX_FILE}"
                             if model_format == "auto" else
                             f"MODEL_FORMAT=sklearn needs {JOBLIB_FILE}, which ALLOW_PICKLE=false refuses")
    return SklearnModel, directory / JOBLIB_FILE


def measure_call_us(model, n_features: int, rows: int = 1, repeats: int = 20, budget_s: float = 0.05) -> float:
    """Median wall time of one model call on ``rows`` rows, in microseconds (at most ``repeats``
    calls, fewer when they exceed ``budget_s`` in total: a slow model is known to be slow fast)."""
    X = np.zeros((rows, n_features), dtype=np.float64)
    model.predict_proba(X)  # warm-up: first calls allocate
    timings = []
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(X)
        timings.append(time.perf_counter() - start)
        if start > deadline:
            break
    return float(np.median(timings)) * 1e6
