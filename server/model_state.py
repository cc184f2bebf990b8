"""The one model version this process serves: verified, loaded, and how it is called."""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from mlserving.server.batching import AdaptiveBatcher
from mlserving.server.config import ServerConfig
from mlserving.server.metrics import ServerMetrics
from mlserving.server.runtime import ModelLoadError, choose_artifact, measure_call_us

log = logging.getLogger("mlserving.server.model")


@dataclass
class LoadedModel:
    name: str
    version: str
    metadata: dict
    runtime: object
    feature_names: list[str]
    threshold: float
    positive_index: int
    loaded_at: float
    call_us: float = 0.0
    feature_index: dict = field(default_factory=dict)

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
    classes = metadata.get("classes", [0, 1])
    positive = metadata.get("positive_class", 1)
    if positive not in classes:
        raise ModelLoadError(f"{directory}/metadata.json: positive_class {positive!r} not in classes {classes}")
    runtime_cls, artifact = choose_artifact(directory, metadata, config.model_format, config.allow_pickle)
    runtime = runtime_cls(artifact, metadata)
    model = LoadedModel(
        name=config.model_name or str(metadata.get("name") or directory.parent.name),
        version=str(metadata.get("version") or directory.name),
        metadata=metadata,
        runtime=runtime,
        feature_names=feature_names,
        threshold=float(metadata.get("decision_threshold", 0.5)),
        positive_index=classes.index(positive),
        loaded_at=time.time(),
        feature_index={name: i for i, name in enumerate(feature_names)},
    )
    try:
        model.call_us = measure_call_us(runtime, model.n_features)
    except Exception as exc:  # noqa: BLE001 - a model that cannot answer a zero row is not servable
        raise ModelLoadError(f"{artifact}: test prediction failed: {type(exc).__name__}: {exc}") from None
    return model


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
        self.model_headers: list[tuple[bytes, bytes]] = []

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
        self.metrics = ServerMetrics(model.name, model.version)
        self.metrics.model_loaded(model.loaded_at)
        self.model_headers = [(b"x-model-name", model.name.encode("latin-1", "replace")),
                              (b"x-model-version", model.version.encode("latin-1", "replace"))]
        mode = self.config.batching
        self.inline = (mode == "auto" and model.call_us <= self.config.inline_max_us) or (
            mode == "off" and model.format == "onnx")
        if not self.inline:
            self.executor = ThreadPoolExecutor(self.config.batch_workers, thread_name_prefix="model")
            if mode == "off":
                self.batcher = None
            else:
                self.batcher = AdaptiveBatcher(model.runtime.predict_proba, self.executor,
                                               max_batch_size=self.config.max_batch_size,
                                               max_batch_time_s=self.config.max_batch_time_ms / 1000,
                                               max_in_flight=self.config.batch_workers)
        log.info("model ready", extra={
            "model": model.name, "version": model.version, "format": model.format,
            "call_us": round(model.call_us, 1), "dispatch": self.dispatch_mode,
            "load_seconds": round(time.perf_counter() - start, 3)})

    @property
    def dispatch_mode(self) -> str:
        if self.inline:
            return "inline"
        return "batched" if self.batcher is not None else "thread"

    def to_array(self, rows: list) -> np.ndarray:
        """Validated rows as the array the runtime takes (float32 for ONNX: no second copy)."""
        return np.array(rows, dtype=self.model.runtime.input_dtype)

    async def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.inline:
            return self.model.runtime.predict_proba(X)
        if self.batcher is not None:
            return await self.batcher.submit(X)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.model.runtime.predict_proba, X)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
