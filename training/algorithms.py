"""The estimators `mlserving train --algorithm` offers, with their default hyper-parameters."""

from typing import Any

ALGORITHMS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "max_depth": 10, "n_jobs": 1},
    "extra_trees": {"n_estimators": 100, "max_depth": 10, "n_jobs": 1},
    "gradient_boosting": {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1},
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
}
DEFAULT_ALGORITHM = "random_forest"


def resolve_params(algorithm: str, overrides: dict[str, Any]) -> dict[str, Any]:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    return {**ALGORITHMS[algorithm], **overrides}


def build_estimator(algorithm: str, params: dict[str, Any], seed: int):
    """A fresh unfitted estimator; unknown hyper-parameters are refused by name."""
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = {
        "random_forest": RandomForestClassifier,
        "extra_trees": ExtraTreesClassifier,
        "gradient_boosting": GradientBoostingClassifier,
        "logistic_regression": LogisticRegression,
    }
    cls = classes[algorithm]
    valid = set(cls().get_params()) - {"random_state"}  # --seed owns it
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(f"param: {unknown} not accepted by {cls.__name__}; valid: {sorted(valid)}")
    estimator = cls(**params, random_state=seed)
    if algorithm == "logistic_regression":
        return make_pipeline(StandardScaler(), estimator)
    return estimator
