"""Synthetic data, reference statistics and the ONNX keep-or-drop rule."""

import numpy as np
from mlserving.training.data import FEATURE_NAMES, make_fraud_dataset
from mlserving.training.onnx_export import export_onnx
from mlserving.training.reference_stats import feature_reference


def test_data_shape_and_positive_rate():
    data = make_fraud_dataset(samples=20_000, seed=42)
    assert data.X.shape == (20_000, 20) and data.feature_names == FEATURE_NAMES
    assert 0.02 <= data.y.mean() <= 0.045


def test_data_is_reproducible_and_seeded():
    a, b, c = (make_fraud_dataset(samples=500, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


def test_reference_fractions_follow_the_data():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=1000), rng.integers(0, 2, size=1000).astype(float)])
    stats = feature_reference(X, ["normal", "binary"], bins=10)
    assert len(stats["normal"]["bin_fractions"]) == 10
    assert all(abs(f - 0.1) < 0.02 for f in stats["normal"]["bin_fractions"])
    assert stats["normal"]["kind"] == "continuous"
    # A two-valued feature gets one bin per value.
    assert stats["binary"]["kind"] == "discrete" and stats["binary"]["values"] == [0.0, 1.0]
    assert stats["binary"]["value_fractions"][1] == (X[:, 1] == 1).mean()


def _fitted_forest():
    from sklearn.ensemble import RandomForestClassifier

    data = make_fraud_dataset(samples=600, seed=3)
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(data.X, data.y), data.X[:100]


def test_onnx_kept_when_it_matches():
    estimator, X = _fitted_forest()
    result = export_onnx(estimator, X)
    assert result.model_bytes and result.max_abs_diff <= 1e-5 and result.reason.startswith("kept")


def test_onnx_dropped_when_it_disagrees():
    estimator, X = _fitted_forest()
    honest = estimator.predict_proba

    # scikit-learn's answer shifted by 1e-3: the compiled model no longer matches it.
    estimator.predict_proba = lambda X: np.clip(honest(X) + 1e-3, 0, 1)
    result = export_onnx(estimator, X)
    assert result.model_bytes is None and result.reason.startswith("dropped") and result.max_abs_diff > 1e-5
