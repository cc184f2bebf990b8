"""Model runtimes: the compiled ONNX model (preferred) or the framework's own model, served natively.

Every runtime answers ``predict(X)`` for a float array of shape [N, F]: probabilities
``[N, n_classes]`` for classifiers, values ``[N]`` for regressors (see server/tasks.py). A
framework is imported only by the runtime that serves it, when it loads.
"""

import logging
import time
from pathlib import Path

import numpy as np
from mlserving.server.tasks import Task
from mlserving.training.registry import NATIVE_FILES, ONNX_FILE

log = logging.getLogger("mlserving.server.runtime")



class ModelLoadError(Exception):
    """The version directory cannot be served; the message says why."""


class OnnxRuntimeModel:
    format = "onnx"

    def __init__(self, path: Path, metadata: dict, task: Task):
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
        onnx_meta = metadata.get("onnx") or {}
        wanted = (onnx_meta.get("probabilities_output", "probabilities") if task.is_classifier
                  else onnx_meta.get("values_output", "variable"))
        names = [o.name for o in self.session.get_outputs()]
        if wanted not in names:
            raise ModelLoadError(f"{path}: no output {wanted!r} (outputs: {names})")
        self.output_names = [wanted]
        self.flatten = not task.is_classifier  # regressors answer [N, 1]
        # The compiled session's own run: the Python wrapper re-validates the feed names on every
        # call, which costs more than a one-row forest. Inputs here are always the one we checked.
        inner = getattr(self.session, "_sess", None)
        self._run = inner.run if hasattr(inner, "run") else self.session.run

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self._run(self.output_names, {self.input_name: X.astype(self.input_dtype, copy=False)}, None)[0]
        return out.reshape(-1) if self.flatten else out


class SklearnModel:
    format = "sklearn"
    input_dtype = np.float64

    def __init__(self, path: Path, metadata: dict, task: Task):
        try:
            import joblib
        except ImportError:
            raise ModelLoadError(f"{path}: this install has no scikit-learn runtime (the lean server image "
                                 "serves ONNX only): export the model to ONNX, or run the server-full image "
                                 "(spec.image, pip extra server-full)") from None
        try:
            self.estimator = joblib.load(path)
        except Exception as exc:  # noqa: BLE001 - unpickling raises anything
            raise ModelLoadError(f"{path}: joblib cannot load it: {exc}") from None
        method = "predict_proba" if task.is_classifier else "predict"
        if not hasattr(self.estimator, method):
            raise ModelLoadError(f"{path}: {type(self.estimator).__name__} has no {method}")
        self.predict = getattr(self.estimator, method)
        if "n_jobs" in getattr(self.estimator, "get_params", dict)():
            # Rows arrive a few at a time; joblib's worker pool would cost more than it saves.
            self.estimator.set_params(n_jobs=1)


class XGBoostModel:
    format = "xgboost"
    input_dtype = np.float32

    def __init__(self, path: Path, metadata: dict, task: Task):
        import xgboost

        estimator = xgboost.XGBClassifier() if task.is_classifier else xgboost.XGBRegressor()
        try:
            estimator.load_model(str(path))
        except Exception as exc:  # noqa: BLE001 - xgboost raises its own XGBoostError and ValueError
            raise ModelLoadError(f"{path}: xgboost cannot load it: {exc}") from None
        estimator.set_params(n_jobs=1)
        self.estimator = estimator
        self.predict = estimator.predict_proba if task.is_classifier else estimator.predict


class LightGBMModel:
    format = "lightgbm"
    input_dtype = np.float64

    def __init__(self, path: Path, metadata: dict, task: Task):
        import lightgbm

        try:
            self.booster = lightgbm.Booster(model_file=str(path))
        except Exception as exc:  # noqa: BLE001 - lightgbm raises LightGBMError and OSError
            raise ModelLoadError(f"{path}: lightgbm cannot load it: {exc}") from None
        self.binary = task.kind == "binary"

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self.booster.predict(X, num_threads=1)
        if self.binary:  # the booster answers the positive class's probability only
            return np.column_stack((1.0 - out, out))
        return out


NATIVE_RUNTIMES = {"sklearn": SklearnModel, "xgboost": XGBoostModel, "lightgbm": LightGBMModel}


def native_artifact(metadata: dict) -> tuple[str, str | None]:
    """(framework, file) of the version's own artifact; file is None when it has none."""
    framework = metadata.get("framework", "sklearn")
    artifacts = metadata["artifacts"]
    return framework, next((n for n in NATIVE_FILES.get(framework, ()) if n in artifacts), None)


def choose_artifact(directory: Path, metadata: dict, model_format: str, allow_pickle: bool):
    """Picks the runtime class and file: ONNX when present unless MODEL_FORMAT says otherwise."""
    has_onnx = ONNX_FILE in metadata["artifacts"]
    if model_format == "onnx" or (model_format == "auto" and has_onnx):
        if not has_onnx:
            raise ModelLoadError(f"MODEL_FORMAT=onnx but {directory} has no {ONNX_FILE}")
        return OnnxRuntimeModel, directory / ONNX_FILE
    framework, native = native_artifact(metadata)
    if framework not in NATIVE_RUNTIMES:
        raise ModelLoadError(f"{directory}/metadata.json: framework must be one of {sorted(NATIVE_RUNTIMES)}, "
                             f"got {framework!r}")
    if native is None:
        raise ModelLoadError(f"{directory} has no {' or '.join(NATIVE_FILES[framework])} and no {ONNX_FILE}")
    if framework == "sklearn" and not allow_pickle:
        raise ModelLoadError(f"ALLOW_PICKLE=false refuses {native}, and {directory} has no usable {ONNX_FILE}"
                             if model_format == "auto" else
                             f"MODEL_FORMAT={model_format} needs {native}, which ALLOW_PICKLE=false refuses")
    return NATIVE_RUNTIMES[framework], directory / native


def measure_call_us(model, n_features: int, rows: int = 1, repeats: int = 20, budget_s: float = 0.05) -> float:
    """Median wall time of one model call on ``rows`` rows, in microseconds (at most ``repeats``
    calls, fewer when they exceed ``budget_s`` in total: a slow model is known to be slow fast)."""
    X = np.zeros((rows, n_features), dtype=model.input_dtype)
    model.predict(X)  # warm-up: first calls allocate
    timings = []
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(X)
        timings.append(time.perf_counter() - start)
        if start > deadline:
            break
    return float(np.median(timings)) * 1e6
