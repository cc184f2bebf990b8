"""Turns a user's model artifact into a registry version: metadata, checksums, ONNX when it matches.

The framework's own artifact is always kept; the ONNX compilation is added only when it answers
like the framework on the check rows (onnx_export.py). The check rows are the reference data set
when one is given (it also becomes the drift reference); without one they are generated inside
the feature ranges the model's own split points reveal (tree models), or drawn around zero for a
model that reveals none, and metadata says which. Nothing is written unless every step succeeds.
"""

import csv
import importlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from mlserving.server.runtime import NATIVE_RUNTIMES
from mlserving.server.tasks import BINARY, REGRESSION, task_from_metadata
from mlserving.training import registry
from mlserving.training.frameworks import Artifact, ArtifactError, read_artifact
from mlserving.training.onnx_export import ONNX_INPUT_NAME, ONNX_PROBABILITIES, ONNX_VALUES, export_onnx
from mlserving.training.reference_stats import feature_reference, prediction_reference

GENERATED_ROWS = 512


def read_reference(path: Path, artifact: Artifact) -> tuple[np.ndarray, list[str]]:
    """The reference rows as [N, n_features] floats, with the feature names (the model's when it
    knows them, else the file's header)."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            header, columns = list(table.column_names), [table.column(i).to_numpy() for i in range(table.num_columns)]
        elif path.suffix == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            if len(rows) < 2:
                raise ArtifactError(f"{path}: needs a header line and at least one row")
            header, columns = rows[0], list(zip(*rows[1:], strict=True))
        else:
            raise ArtifactError(f"{path}: --reference must be a .csv or .parquet file")
    except ImportError:
        raise ArtifactError(f"{path}: reading parquet needs the pyarrow package") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable reference data: {exc}") from None
    wanted = artifact.feature_names
    if wanted and all(name in header for name in wanted):
        picked = [header.index(name) for name in wanted]
    elif len(header) == artifact.n_features:
        picked = list(range(len(header)))
    else:
        raise ArtifactError(f"{path}: needs the model's {artifact.n_features} feature columns"
                            + (f" ({', '.join(wanted[:5])}...)" if wanted else "") + f", has {len(header)}: "
                            f"{', '.join(header[:8])}")
    try:
        X = np.column_stack([np.asarray(columns[i], dtype=np.float64) for i in picked])
    except ValueError as exc:
        raise ArtifactError(f"{path}: feature columns must be numbers: {exc}") from None
    if not np.isfinite(X).all():
        raise ArtifactError(f"{path}: feature columns hold NaN or infinite values")
    return X, [header[i] for i in picked]


def generated_rows(artifact: Artifact, rows: int = GENERATED_ROWS, seed: int = 0) -> tuple[np.ndarray, str]:
    """Rows spread over the range each feature's split points span (10 % wider on each side)."""
    rng = np.random.default_rng(seed)
    points = artifact.split_points()
    X = rng.standard_normal((rows, artifact.n_features))
    for f, thresholds in points.items():
        lo, hi = min(thresholds), max(thresholds)
        margin = max((hi - lo) * 0.1, 1e-3 * max(abs(lo), abs(hi), 1.0))
        X[:, f] = rng.uniform(lo - margin, hi + margin, rows)
        # Half the rows also sit right at a split point, where float32 rounding would flip a decision.
        at = rng.random(rows) < 0.5
        X[at, f] = rng.choice(np.asarray(thresholds), int(at.sum()))
    source = (f"rows generated within the split-point ranges of {len(points)} of {artifact.n_features} features"
              if points else "rows generated from a standard normal (the model reveals no feature ranges)")
    return X, source


def native_answers(artifact: Artifact, metadata: dict, X: np.ndarray) -> np.ndarray:
    """What the server's native runtime answers on X: the framework's own predict_proba/predict."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / artifact.native_file
        path.write_bytes(artifact.native_bytes)
        runtime = NATIVE_RUNTIMES[artifact.framework](path, metadata, task_from_metadata(metadata))
        return np.asarray(runtime.predict(X.astype(runtime.input_dtype)), dtype=np.float64)


def task_metadata(artifact: Artifact, threshold: float = 0.5) -> dict:
    if artifact.task == BINARY:
        return {"task": BINARY, "classes": artifact.classes, "positive_class": artifact.classes[1],
                "decision_threshold": threshold}
    if artifact.task == REGRESSION:
        return {"task": REGRESSION, "output_name": "predict"}
    return {"task": artifact.task, "classes": artifact.classes}


def import_artifact(path: Path, framework: str, name: str, version: str, out: Path,
                    reference: Path | None = None, force: bool = False, extra: dict | None = None,
                    log=print, reference_rows: np.ndarray | None = None, check_rows: np.ndarray | None = None,
                    threshold: float = 0.5, held_out_answers: np.ndarray | None = None,
                    feature_names: list[str] | None = None) -> Path:
    """``reference``: a .csv/.parquet file of feature rows; ``reference_rows`` the same as an
    array (training passes its own rows), ``check_rows`` other rows for the ONNX check (held out),
    ``held_out_answers`` the model's answers on held-out rows: their drift scores become the
    prediction-drift reference (``reference.prediction``). ``feature_names`` name the columns of
    ``reference_rows`` for a model that does not know its own (training passes the data set's)."""
    registry.check_name(name)
    registry.check_version(version)
    target = registry.version_dir(out, name, version)
    if target.exists() and not force:
        raise registry.RegistryError(f"{target} already exists; pass --force to replace this version")
    artifact = read_artifact(path, framework)
    X_reference = None
    if reference is not None:
        X_reference, feature_names = read_reference(reference, artifact)
        X_check, check_source = X_reference, f"rows of {Path(reference).name}"
    elif reference_rows is not None:
        X_reference = reference_rows
        feature_names = artifact.feature_names or feature_names or [f"f{i}" for i in range(artifact.n_features)]
        X_check, check_source = X_reference, "training rows"
    else:
        X_check, check_source = generated_rows(artifact)
        feature_names = artifact.feature_names or [f"f{i}" for i in range(artifact.n_features)]
        log(f"no --reference: ONNX checked on {check_source}; no drift reference recorded")
    if check_rows is not None:
        X_check, check_source = check_rows, "held-out rows"
    metadata = {"name": name, "version": version, "framework": framework,
                "feature_names": feature_names, "n_features": artifact.n_features,
                **task_metadata(artifact, threshold), **(extra or {})}
    try:
        expected = native_answers(artifact, metadata, X_check)
    except Exception as exc:  # noqa: BLE001 - a model that cannot answer its own check rows is not importable
        raise ArtifactError(f"{path}: the {framework} model cannot predict {artifact.n_features}-feature rows: "
                            f"{type(exc).__name__}: {exc}") from None
    classifier = artifact.task != REGRESSION
    onnx = export_onnx(artifact.model, X_check, expected, framework=framework, classifier=classifier,
                       check_source=check_source)
    log(f"onnx: {onnx.reason}")
    artifacts = {artifact.native_file: artifact.native_bytes}
    if onnx.model_bytes is not None:
        artifacts[registry.ONNX_FILE] = onnx.model_bytes
    metadata.update({
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "serving": {"runtime": "onnx" if onnx.model_bytes is not None else framework, "reason": onnx.reason},
        "onnx": {
            "file": registry.ONNX_FILE if onnx.model_bytes is not None else None,
            "input": ONNX_INPUT_NAME,
            **({"probabilities_output": ONNX_PROBABILITIES} if classifier else {"values_output": ONNX_VALUES}),
            "max_abs_diff": onnx.max_abs_diff,
            "status": onnx.reason,
            "check": check_source,
        },
        "library_versions": library_versions(framework),
    })
    if X_reference is not None:
        metadata["reference"] = {"rows": len(X_reference), "features": feature_reference(X_reference, feature_names)}
        if held_out_answers is not None:
            scores = task_from_metadata(metadata).drift_scores(np.asarray(held_out_answers, dtype=np.float64))
            metadata["reference"]["prediction"] = {"rows": len(scores), **prediction_reference(scores)}
    if artifact.task == REGRESSION:
        metadata.setdefault("prediction_buckets", value_buckets(expected))
    written = registry.write_version(out, name, version, artifacts, metadata, force=force)
    log(f"wrote {written}: {framework} {artifact.task}, served by {metadata['serving']['runtime']}")
    return written


def value_buckets(values: np.ndarray, count: int = 12) -> list[float]:
    """Histogram buckets for a regressor's predictions: quantiles of what it answers on the check rows."""
    edges = np.unique(np.round(np.quantile(values, np.linspace(0.0, 1.0, count)), 6))
    return [float(e) for e in edges]


def library_versions(framework: str) -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    # The framework's own version is read from its module: XGBoost ships as `xgboost` (with CUDA)
    # or `xgboost-cpu`, one import name for both distributions.
    module, name, converter = {"sklearn": ("sklearn", "scikit-learn", "skl2onnx"),
                               "xgboost": ("xgboost", "xgboost", "onnxmltools"),
                               "lightgbm": ("lightgbm", "lightgbm", "onnxmltools")}[framework]
    versions = {"python": platform.python_version()}
    for dist in ("numpy", "onnx", "onnxruntime", converter):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    try:
        versions[name] = importlib.import_module(module).__version__
    except ImportError:
        versions[name] = None
    return versions
