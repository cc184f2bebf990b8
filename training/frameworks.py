"""What an artifact of each framework is: how it is read, what task it solves, which features it
takes, and the feature ranges its own split points reveal (for checking ONNX without data).

scikit-learn artifacts are joblib/pickle files of an estimator or pipeline; XGBoost's are its
JSON or UBJ model files (kept as JSON in the registry); LightGBM's its text model files.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlserving.server.tasks import BINARY, MULTICLASS, REGRESSION
from mlserving.training import registry

FRAMEWORKS = ("sklearn", "xgboost", "lightgbm")


class ArtifactError(Exception):
    """The artifact cannot be read or served; the message names the file and the framework."""


@dataclass
class Artifact:
    framework: str
    task: str
    classes: list
    n_features: int
    feature_names: list[str] | None    # when the model knows them
    native_file: str                   # its registry file name
    native_bytes: bytes
    model: object                      # what the ONNX converter takes

    def split_points(self) -> dict[int, list[float]]:
        """Feature index -> the thresholds the model compares it with (empty when it has none)."""
        return SPLIT_POINTS[self.framework](self.model)


def read_artifact(path: Path, framework: str) -> Artifact:
    if framework not in FRAMEWORKS:
        raise ArtifactError(f"framework: must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file (framework {framework})")
    try:
        return READERS[framework](path)
    except ArtifactError:
        raise
    except ImportError as exc:
        raise ArtifactError(f"{path}: reading a {framework} model needs the {exc.name} package "
                            f"(pip install 'mlserving[server-full]')") from None
    except Exception as exc:  # noqa: BLE001 - each framework fails in its own way on a bad file
        raise ArtifactError(f"{path}: cannot be read as a {framework} model: {type(exc).__name__}: {exc}") from None


def _sklearn(path: Path) -> Artifact:
    import joblib
    from sklearn.base import is_classifier, is_regressor

    model = joblib.load(path)
    if is_classifier(model):
        classes = [_plain(c) for c in model.classes_]
        task = BINARY if len(classes) == 2 else MULTICLASS
    elif is_regressor(model):
        classes, task = [], REGRESSION
    else:
        raise ArtifactError(f"{path}: a {type(model).__name__} is neither a scikit-learn classifier nor a "
                            "regressor (framework sklearn)")
    n_features = getattr(model, "n_features_in_", None)
    if n_features is None:
        raise ArtifactError(f"{path}: the {type(model).__name__} is not fitted (no n_features_in_; framework sklearn)")
    names = getattr(model, "feature_names_in_", None)
    return Artifact("sklearn", task, classes, int(n_features), None if names is None else [str(n) for n in names],
                    registry.JOBLIB_FILE, path.read_bytes(), model)


def _xgboost(path: Path) -> Artifact:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(path))
    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    n_classes = int(learner["learner_model_param"].get("num_class", "0") or 0)
    if objective.startswith("binary:"):
        task, classes = BINARY, [0, 1]
    elif objective.startswith("multi:"):
        task, classes = MULTICLASS, list(range(n_classes))
    elif objective.startswith(("reg:", "count:", "survival:")):
        task, classes = REGRESSION, []
    else:
        raise ArtifactError(f"{path}: objective {objective!r} is not a classification or regression objective "
                            "(framework xgboost)")
    raw = bytes(booster.save_raw("json"))
    wrapper = xgboost.XGBClassifier() if task != REGRESSION else xgboost.XGBRegressor()
    wrapper.load_model(bytearray(raw))
    return Artifact("xgboost", task, classes, booster.num_features(), booster.feature_names,
                    registry.XGBOOST_JSON_FILE, raw, wrapper)


def _lightgbm(path: Path) -> Artifact:
    import lightgbm

    booster = lightgbm.Booster(model_file=str(path))
    objective = str(booster.dump_model(num_iteration=1)["objective"]).split()[0]
    if objective in ("binary", "cross_entropy", "xentropy"):
        task, classes = BINARY, [0, 1]
    elif objective in ("multiclass", "softmax", "multiclassova", "ovr"):
        task, classes = MULTICLASS, list(range(booster.dump_model(num_iteration=1)["num_class"]))
    elif objective in ("lambdarank", "rank_xendcg"):
        raise ArtifactError(f"{path}: ranking objective {objective!r} is not served (framework lightgbm)")
    else:
        task, classes = REGRESSION, []
    return Artifact("lightgbm", task, classes, booster.num_feature(), list(booster.feature_name()),
                    registry.LIGHTGBM_FILE, booster.model_to_string().encode(), booster)


READERS = {"sklearn": _sklearn, "xgboost": _xgboost, "lightgbm": _lightgbm}


def _plain(label):
    """numpy scalars from classes_ as JSON-friendly ints or strings."""
    value = label.item() if hasattr(label, "item") else label
    return value if isinstance(value, int | str) and not isinstance(value, bool) else str(value)


def _sklearn_splits(model) -> dict[int, list[float]]:
    points: dict[int, list[float]] = {}
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    trees = []
    if hasattr(final, "tree_"):
        trees = [final]
    elif hasattr(final, "estimators_"):
        trees = [t for t in np.ravel(final.estimators_) if hasattr(t, "tree_")]
    if hasattr(model, "steps") and len(model.steps) > 1:
        return points  # thresholds of a later step are in transformed units, not the input's
    for tree in trees:
        inner = tree.tree_.feature >= 0
        for f, t in zip(tree.tree_.feature[inner], tree.tree_.threshold[inner], strict=True):
            points.setdefault(int(f), []).append(float(t))
    return points


def _xgboost_splits(model) -> dict[int, list[float]]:
    points: dict[int, list[float]] = {}
    names = model.get_booster().feature_names
    index = {n: i for i, n in enumerate(names)} if names else None

    def walk(node):
        if "split" in node:
            key = node["split"]
            f = index[key] if index and key in index else int(str(key).lstrip("f"))
            points.setdefault(f, []).append(float(node["split_condition"]))
            for child in node.get("children", ()):
                walk(child)

    for dump in model.get_booster().get_dump(dump_format="json"):
        walk(json.loads(dump))
    return points


def _lightgbm_splits(booster) -> dict[int, list[float]]:
    points: dict[int, list[float]] = {}

    def walk(node):
        if "split_feature" in node:
            if isinstance(node.get("threshold"), int | float):
                points.setdefault(int(node["split_feature"]), []).append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return points


SPLIT_POINTS = {"sklearn": _sklearn_splits, "xgboost": _xgboost_splits, "lightgbm": _lightgbm_splits}
