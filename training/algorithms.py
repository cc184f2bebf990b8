"""The estimators `mlserving train --algorithm` offers, with their default hyper-parameters.

Each algorithm has a classifier and a regressor; the data set decides which is trained.
``xgboost`` and ``lightgbm`` need those packages (the ``server-full`` extra).
"""

from typing import Any

ALGORITHMS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "max_depth": 10, "n_jobs": 1},
    "extra_trees": {"n_estimators": 100, "max_depth": 10, "n_jobs": 1},
    "gradient_boosting": {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1},
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
    "xgboost": {"n_estimators": 100, "max_depth": 6, "learning_rate": 0.1, "n_jobs": 1},
    "lightgbm": {"n_estimators": 100, "num_leaves": 31, "learning_rate": 0.1, "n_jobs": 1, "verbose": -1},
}
DEFAULT_ALGORITHM = "random_forest"
# The framework that saves and serves each algorithm's model.
FRAMEWORK = {"xgboost": "xgboost", "lightgbm": "lightgbm"}


def framework_of(algorithm: str) -> str:
    return FRAMEWORK.get(algorithm, "sklearn")


def resolve_params(algorithm: str, overrides: dict[str, Any], regression: bool = False) -> dict[str, Any]:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    defaults = dict(ALGORITHMS[algorithm])
    if regression and algorithm == "logistic_regression":
        defaults = {}  # its regressor counterpart is ridge regression
    return {**defaults, **overrides}


def _classes(algorithm: str, regression: bool):
    if algorithm == "xgboost":
        import xgboost

        return xgboost.XGBRegressor if regression else xgboost.XGBClassifier
    if algorithm == "lightgbm":
        import lightgbm

        return lightgbm.LGBMRegressor if regression else lightgbm.LGBMClassifier
    from sklearn import ensemble, linear_model

    table = {
        "random_forest": (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor),
        "extra_trees": (ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor),
        "gradient_boosting": (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor),
        "logistic_regression": (linear_model.LogisticRegression, linear_model.Ridge),
    }
    return table[algorithm][1 if regression else 0]


def build_estimator(algorithm: str, params: dict[str, Any], seed: int, regression: bool = False):
    """A fresh unfitted estimator; unknown hyper-parameters are refused by name."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cls = _classes(algorithm, regression)
    valid = set(cls().get_params()) - {"random_state"}  # --seed owns it
    if algorithm == "lightgbm":
        valid.add("verbose")  # LightGBM takes its own parameters as keyword arguments
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(f"param: {unknown} not accepted by {cls.__name__}; valid: {sorted(valid)}")
    estimator = cls(**params, random_state=seed)
    if algorithm == "logistic_regression":
        return make_pipeline(StandardScaler(), estimator)
    return estimator
