"""Synthetic fraud data: 20 numeric features, about 3 % positives, reproducible from a seed."""

from dataclasses import dataclass

import numpy as np

FEATURE_NAMES = (
    "amount", "amount_zscore", "hour_of_day", "day_of_week", "merchant_risk", "merchant_age_days",
    "card_age_days", "tx_count_1h", "tx_count_24h", "amount_sum_24h", "distinct_merchants_24h",
    "distance_from_home_km", "distance_from_last_tx_km", "seconds_since_last_tx", "is_foreign",
    "is_online", "device_risk", "ip_risk", "failed_logins_24h", "account_age_days",
)
POSITIVE_RATE = 0.03


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]


def make_fraud_dataset(samples: int = 10_000, seed: int = 42) -> Dataset:
    """Imbalanced binary classification data; the same (samples, seed) always gives the same data."""
    from sklearn.datasets import make_classification

    if samples < 200:
        raise ValueError(f"samples: must be at least 200 to hold enough positives, got {samples}")
    X, y = make_classification(
        n_samples=samples, n_features=len(FEATURE_NAMES), n_informative=8, n_redundant=4,
        n_clusters_per_class=2, weights=[1 - POSITIVE_RATE], flip_y=0.002, class_sep=1.6,
        random_state=seed,
    )
    return Dataset(X=X.astype(np.float64), y=y.astype(np.int64), feature_names=FEATURE_NAMES)


# Example data sets for the other tasks: a 3-class transaction category and a spend amount.
CATEGORY_FEATURES = tuple(f"signal_{i:02d}" for i in range(12))
CATEGORY_CLASSES = ("groceries", "travel", "electronics")
AMOUNT_FEATURES = tuple(f"signal_{i:02d}" for i in range(10))


def make_multiclass_dataset(samples: int = 10_000, seed: int = 42) -> Dataset:
    """Three balanced classes (string labels) over 12 numeric features."""
    from sklearn.datasets import make_classification

    if samples < 200:
        raise ValueError(f"samples: must be at least 200, got {samples}")
    X, y = make_classification(n_samples=samples, n_features=len(CATEGORY_FEATURES), n_informative=6,
                               n_redundant=2, n_classes=len(CATEGORY_CLASSES), n_clusters_per_class=1,
                               class_sep=1.2, random_state=seed)
    return Dataset(X=X.astype(np.float64), y=np.asarray(CATEGORY_CLASSES)[y], feature_names=CATEGORY_FEATURES)


def make_regression_dataset(samples: int = 10_000, seed: int = 42) -> Dataset:
    """A positive amount driven by 10 numeric features, with noise."""
    from sklearn.datasets import make_regression

    if samples < 200:
        raise ValueError(f"samples: must be at least 200, got {samples}")
    X, y = make_regression(n_samples=samples, n_features=len(AMOUNT_FEATURES), n_informative=6, noise=5.0,
                           random_state=seed)
    return Dataset(X=X.astype(np.float64), y=(y - y.min() + 10.0).astype(np.float64), feature_names=AMOUNT_FEATURES)


DATASETS = {"fraud": make_fraud_dataset, "multiclass": make_multiclass_dataset, "regression": make_regression_dataset}
