"""Trains one model version on an example data set and writes it to the registry.

The model is fitted with its framework's API, saved with the framework's own save call and then
imported like any user's artifact (importer.py), so what `train` writes is what `import` writes.
"""

import tempfile
from pathlib import Path

import numpy as np
from mlserving.training import registry
from mlserving.training.algorithms import build_estimator, framework_of, resolve_params
from mlserving.training.data import DATASETS
from mlserving.training.importer import import_artifact

TASK_OF_DATASET = {"fraud": "binary", "multiclass": "multiclass", "regression": "regression"}


def held_out_metrics(task: str, y_true: np.ndarray, answers: np.ndarray, threshold: float, classes=None) -> dict:
    from sklearn import metrics

    if task == "regression":
        return {"rows": len(y_true), "r2": float(metrics.r2_score(y_true, answers)),
                "mae": float(metrics.mean_absolute_error(y_true, answers))}
    if task == "multiclass":
        predicted = np.asarray(classes)[answers.argmax(axis=1)]
        return {"rows": len(y_true), "accuracy": float(metrics.accuracy_score(y_true, predicted)),
                "f1_macro": float(metrics.f1_score(y_true, predicted, average="macro"))}
    proba = answers[:, 1]
    predicted = (proba >= threshold).astype(int)
    return {
        "rows": len(y_true),
        "positives": int(y_true.sum()),
        "roc_auc": float(metrics.roc_auc_score(y_true, proba)),
        "precision": float(metrics.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y_true, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(y_true, predicted, zero_division=0)),
    }


def save_native(estimator, framework: str, directory: Path) -> Path:
    """The fitted model saved with its framework's own call."""
    if framework == "xgboost":
        path = directory / "model.json"
        estimator.save_model(str(path))
    elif framework == "lightgbm":
        path = directory / "model.txt"
        estimator.booster_.save_model(str(path))
    else:
        import joblib

        path = directory / "model.joblib"
        joblib.dump(estimator, path)
    return path


def train_version(name: str, version: str, out: Path, algorithm: str = "random_forest",
                  params: dict | None = None, seed: int = 42, samples: int = 10_000,
                  threshold: float = 0.5, force: bool = False, dataset: str = "fraud", log=print) -> Path:
    from sklearn.model_selection import train_test_split

    registry.check_name(name)
    registry.check_version(version)
    if dataset not in DATASETS:
        raise ValueError(f"dataset: must be one of {sorted(DATASETS)}, got {dataset!r}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must be between 0 and 1 (exclusive), got {threshold}")
    target = registry.version_dir(out, name, version)
    if target.exists() and not force:
        raise registry.RegistryError(f"{target} already exists; pass --force to retrain this version")
    task = TASK_OF_DATASET[dataset]
    regression = task == "regression"
    params = resolve_params(algorithm, params or {}, regression)
    framework = framework_of(algorithm)

    data = DATASETS[dataset](samples=samples, seed=seed)
    y = data.y
    classes = sorted(set(y.tolist())) if not regression else None
    if framework != "sklearn" and not regression:
        y = np.searchsorted(np.asarray(classes), y)  # XGBoost and LightGBM take labels 0..K-1
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, y, test_size=0.25, stratify=None if regression else y, random_state=seed)
    estimator = build_estimator(algorithm, params, seed, regression)
    log(f"training {name} {version}: {algorithm} {params} on {len(X_train)} rows of {dataset} (seed {seed})")
    estimator.fit(X_train, y_train)
    answers = estimator.predict(X_test) if regression else estimator.predict_proba(X_test)
    label_names = classes if framework == "sklearn" else list(range(len(classes or [])))
    metrics = held_out_metrics(task, y_test, answers, threshold, label_names)
    extra = {"algorithm": algorithm, "hyperparameters": params, "seed": seed, "dataset": dataset,
             "training_samples": samples, "metrics": metrics}
    if framework != "sklearn" and task == "multiclass":
        extra["classes"] = classes  # the names behind the 0..K-1 labels the booster was fitted on
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_native(estimator, framework, Path(tmp))
        path = import_artifact(saved, framework, name, version, out, force=force, extra=extra, log=log,
                               reference_rows=X_train, check_rows=X_test, threshold=threshold,
                               held_out_answers=answers, feature_names=list(data.feature_names))
    log(f"wrote {path}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "rows"))
    return path
