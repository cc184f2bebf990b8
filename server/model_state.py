"""The one model version this process serves: verified, loaded, and how it is called."""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from mlserving.server.batching import AdaptiveBatcher
from mlserving.server.config import ServerConfig
from mlserving.server.drift import DriftMonitor, build_monitor
from mlserving.server.logs import process_age_s
from mlserving.server.metrics import ServerMetrics
from mlserving.server.runtime import ModelLoadError, choose_artifact, measure_call_us
from mlserving.server.tasks import Task, TaskError, task_from_metadata
from mlserving.server.whole_response import head_lines

log = logging.getLogger("mlserving.server.model")


@dataclass
class LoadedModel:
    name: str
    version: str
    metadata: dict
    runtime: object
    feature_names: list[str]
    task: Task
    loaded_at: float
    call_us: float = 0.0
    feature_index: dict = field(default_factory=dict)
    v2_default_outputs: list = field(default_factory=list)  # (name, as binary) when a request names none
    v2_single_outputs: dict = field(default_factory=dict)  # name -> [(name, False)]: a request naming one

    def __post_init__(self):
        self.v2_default_outputs = [(name, False) for name in self.task.outputs]
        self.v2_single_outputs = {name: [(name, False)] for name in self.task.outputs}

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def format(self) -> str:
        return self.runtime.format


def load_model(config: ServerConfig) -> LoadedModel:
    """Verifies every sha256 in metadata.json, then loads the preferred artifact."""
    from mlserving.training.registry import RegistryError, read_metadata, verify_artifacts

    directory = config.model_path
    if not directory.is_dir():
        raise ModelLoadError(f"MODEL_PATH {directory} is not a directory")
    try:
        metadata = read_metadata(directory)
        verify_artifacts(directory, metadata)
    except RegistryError as exc:
        raise ModelLoadError(str(exc)) from None
    feature_names = metadata.get("feature_names")
    if not isinstance(feature_names, list) or not feature_names or not all(isinstance(n, str) for n in feature_names):
        raise ModelLoadError(f"{directory}/metadata.json: feature_names must be a non-empty list of strings")
    if metadata.get("n_features", len(feature_names)) != len(feature_names):
        raise ModelLoadError(f"{directory}/metadata.json: n_features disagrees with feature_names")
    try:
        task = task_from_metadata(metadata, f"{directory}/metadata.json")
    except TaskError as exc:
        raise ModelLoadError(str(exc)) from None
    runtime_cls, artifact = choose_artifact(directory, metadata, config.model_format, config.allow_pickle)
    runtime = runtime_cls(artifact, metadata, task)
    name = config.model_name or str(metadata.get("name") or directory.parent.name)
    version = str(metadata.get("version") or directory.name)
    for field_name, value in (("name", name), ("version", version)):
        # Both go out in every response's x-model-name / x-model-version header.
        if not value.isprintable() or len(value) > 253:
            raise ModelLoadError(f"{directory}/metadata.json: {field_name} must be at most 253 printable characters "
                                 f"(it is sent in the x-model-{field_name} header), got {value[:60]!r}")
    model = LoadedModel(
        name=name,
        version=version,
        metadata=metadata,
        runtime=runtime,
        feature_names=feature_names,
        task=task,
        loaded_at=time.time(),
        feature_index={name: i for i, name in enumerate(feature_names)},
    )
    try:
        model.call_us = measure_call_us(runtime, model.n_features)
        check_output(runtime, model.n_features, task)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model that cannot answer a zero row is not servable
        raise ModelLoadError(f"{artifact}: test prediction failed: {type(exc).__name__}: {exc}") from None
    return model


def check_output(runtime, n_features: int, task: Task) -> None:
    """The runtime answers the shape the task promises: [N, n_classes] or [N]."""
    out = runtime.predict(np.zeros((2, n_features), dtype=runtime.input_dtype))
    expected = (2, len(task.classes)) if task.is_classifier else (2,)
    if getattr(out, "shape", None) != expected:
        raise ModelLoadError(f"{runtime.format} runtime: the {task.kind} model answers shape {getattr(out, 'shape', None)} for 2 rows, "
                             f"expected {expected} (metadata.json task/classes)")


class ModelState:
    """Holds the loaded model (or the reason there is none) and decides how calls reach it:
    inline on the event loop when one call is cheaper than any coalescing, otherwise through the
    adaptive batcher on a worker thread."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.model: LoadedModel | None = None
        self.not_ready_reason = "model not loaded yet"
        self.inline = False
        self.batcher: AdaptiveBatcher | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.metrics: ServerMetrics | None = None  # labelled with the model, so made by load()
        self.model_head = b""  # x-model-name and x-model-version header lines, once loaded
        self.drift: DriftMonitor | None = None
        self.drift_status = "model not loaded yet"

    @property
    def ready(self) -> bool:
        return self.model is not None

    def load(self) -> None:
        start = time.perf_counter()
        try:
            self.model = load_model(self.config)
        except ModelLoadError as exc:
            self.model = None
            self.not_ready_reason = str(exc)
            log.error("model not ready", extra={"reason": str(exc), "model_path": str(self.config.model_path)})
            self.metrics = ServerMetrics(self.config.model_name or self.config.model_path.parent.name or "unknown",
                                         self.config.model_path.name or "unknown")
            return
        model = self.model
        self.metrics = ServerMetrics(model.name, model.version, task=model.task,
                                     value_buckets=model.metadata.get("prediction_buckets"))
        self.metrics.model_loaded(model.loaded_at)
        self.model_head = head_lines([(b"x-model-name", model.name.encode("latin-1", "replace")),
                                      (b"x-model-version", model.version.encode("latin-1", "replace"))])
        mode = self.config.batching
        self.inline = (mode == "auto" and model.call_us <= self.config.inline_max_us) or (
            mode == "off" and model.format == "onnx")
        if not self.inline:
            self.executor = ThreadPoolExecutor(self.config.batch_workers, thread_name_prefix="model")
            if mode == "off":
                self.batcher = None
            else:
                self.batcher = AdaptiveBatcher(model.runtime.predict, self.executor,
                                               max_batch_size=self.config.max_batch_size,
                                               max_batch_time_s=self.config.max_batch_time_ms / 1000,
                                               max_in_flight=self.config.batch_workers)
        self.drift, self.drift_status = build_monitor(self.config, model, self.metrics.registry)
        log.info("model ready", extra={
            "model": model.name, "version": model.version, "format": model.format,
            "call_us": round(model.call_us, 1), "dispatch": self.dispatch_mode, "drift": self.drift_status,
            "load_seconds": round(time.perf_counter() - start, 3), "process_age_s": process_age_s()})

    @property
    def dispatch_mode(self) -> str:
        if self.inline:
            return "inline"
        return "batched" if self.batcher is not None else "thread"

    def to_array(self, rows: list) -> np.ndarray:
        """Validated rows as the array the runtime takes (float32 for ONNX: no second copy)."""
        return np.array(rows, dtype=self.model.runtime.input_dtype)

    def predict_inline(self, X: np.ndarray) -> np.ndarray:
        """The model called on the event loop (when ``inline``: cheaper than any hand-off)."""
        Y = self.model.runtime.predict(X)
        if self.drift is not None:
            self.drift.record(X, Y)
        return Y

    async def predict(self, X: np.ndarray) -> np.ndarray:
        """The model's answer for validated rows: probabilities [N, n_classes] or values [N]."""
        if self.inline:
            return self.predict_inline(X)
        if self.batcher is not None:
            Y = await self.batcher.submit(X)
        else:
            Y = await asyncio.get_running_loop().run_in_executor(self.executor, self.model.runtime.predict, X)
        if self.drift is not None:
            self.drift.record(X, Y)  # two deque appends; the window and PSIs are computed elsewhere
        return Y

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
