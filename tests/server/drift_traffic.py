"""Traffic for the drift tests: the held-out rows of a training run (the same split train_version
makes), as they are, or with one feature shifted by one training standard deviation."""

import numpy as np
from mlserving.training.data import make_fraud_dataset


def held_out_rows(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, training rows) of ``train_version(..., samples=samples, seed=seed)``."""
    from sklearn.model_selection import train_test_split

    data = make_fraud_dataset(samples=samples, seed=seed)
    X_train, X_test, _, _ = train_test_split(data.X, data.y, test_size=0.25, stratify=data.y, random_state=seed)
    return X_test, X_train


def reference_traffic(samples: int, seed: int, rows: int, shift_feature: int | None = None,
                      draw_seed: int = 7) -> np.ndarray:
    held_out, train = held_out_rows(samples, seed)
    rng = np.random.default_rng(draw_seed)
    traffic = held_out[rng.integers(0, len(held_out), rows)].copy()
    if shift_feature is not None:
        traffic[:, shift_feature] += train[:, shift_feature].std()
    return traffic
