"""Trains one model version and writes it to the registry."""

import io
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from mlserving.training import registry
from mlserving.training.algorithms import build_estimator, resolve_params
from mlserving.training.data import make_fraud_dataset
from mlserving.training.onnx_export import ONNX_INPUT_NAME, ONNX_PROBABILITIES, export_onnx
from mlserving.training.reference_stats import feature_reference


def held_out_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    predicted = (proba >= threshold).astype(int)
    return {
        "rows": len(y_true),
        "positives": int(y_true.sum()),
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
    }


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "joblib", "skl2onnx", "onnx", "onnxruntime"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return versions


def train_version(name: str, version: str, out: Path, algorithm: str = "random_forest",
                  params: dict | None = None, seed: int = 42, samples: int = 10_000,
                  threshold: float = 0.5, force: bool = False, log=print) -> Path:
    import joblib
    from sklearn.model_selection import train_test_split

    registry.check_name(name)
    registry.check_version(version)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must be between 0 and 1 (exclusive), got {threshold}")
    target = registry.version_dir(out, name, version)
    if target.exists() and not force:
        raise registry.RegistryError(f"{target} already exists; pass --force to retrain this version")
    params = resolve_params(algorithm, params or {})

    data = make_fraud_dataset(samples=samples, seed=seed)
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=0.25, stratify=data.y, random_state=seed)
    estimator = build_estimator(algorithm, params, seed)
    log(f"training {name} {version}: {algorithm} {params} on {len(X_train)} rows (seed {seed})")
    estimator.fit(X_train, y_train)
    proba = estimator.predict_proba(X_test)[:, 1]
    metrics = held_out_metrics(y_test, proba, threshold)

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    artifacts: dict[str, bytes] = {registry.JOBLIB_FILE: buffer.getvalue()}
    onnx = export_onnx(estimator, X_test)
    if onnx.model_bytes is not None:
        artifacts[registry.ONNX_FILE] = onnx.model_bytes
    log(f"onnx: {onnx.reason}")

    metadata = {
        "name": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": "binary_classification",
        "algorithm": algorithm,
        "hyperparameters": params,
        "seed": seed,
        "training_samples": samples,
        "feature_names": list(data.feature_names),
        "n_features": len(data.feature_names),
        "classes": [0, 1],
        "positive_class": 1,
        "decision_threshold": threshold,
        "metrics": metrics,
        "reference": {"rows": len(X_train), "features": feature_reference(X_train, data.feature_names)},
        "onnx": {
            "file": registry.ONNX_FILE if onnx.model_bytes is not None else None,
            "input": ONNX_INPUT_NAME,
            "probabilities_output": ONNX_PROBABILITIES,
            "max_abs_diff": onnx.max_abs_diff,
            "status": onnx.reason,
        },
        "library_versions": library_versions(),
    }
    path = registry.write_version(out, name, version, artifacts, metadata, force=force)
    log(f"wrote {path}: roc_auc={metrics['roc_auc']:.4f} f1={metrics['f1']:.4f}")
    return path
