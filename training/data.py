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
