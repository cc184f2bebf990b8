"""XGBoost and LightGBM models compile to ONNX through onnxmltools and are kept: their answers match
the framework's own within the ONNX tolerance (onnxmltools refuses skl2onnx's tensor types, which
once left every booster served natively)."""

import numpy as np
import pytest
from mlserving.training.onnx_export import export_onnx


def data(classes: int | None):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 6)).astype(np.float32)
    score = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3]
    if classes is None:
        return X, 10 * score
    return X, np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("classes", [2, 3, None])
def test_boosters_compile_to_onnx_that_answers_like_them(framework, classes):
    if framework == "xgboost":
        import xgboost

        cls = xgboost.XGBRegressor if classes is None else xgboost.XGBClassifier
        model = cls(n_estimators=20, max_depth=3, n_jobs=1)
    else:
        import lightgbm

        cls = lightgbm.LGBMRegressor if classes is None else lightgbm.LGBMClassifier
        model = cls(n_estimators=20, num_leaves=8, n_jobs=1, verbose=-1)
    X, y = data(classes)
    model.fit(X, y)
    expected = model.predict(X) if classes is None else model.predict_proba(X)
    result = export_onnx(model, X, expected.astype(np.float64), framework=framework, classifier=classes is not None)
    assert result.model_bytes is not None, result.reason
    assert result.reason.startswith("kept")
