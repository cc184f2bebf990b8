"""Per-feature reference statistics of the training data, kept in metadata for drift detection.

A continuous feature gets quantile bin edges and the fraction of training rows in each bin (a
feature with few distinct values gets one bin per value), so a
later monitor can compute a population stability index against live traffic with the same bins.
The positive-class scores of the held-out rows get the same treatment, for prediction drift.
"""

import numpy as np


def feature_reference(X: np.ndarray, feature_names, bins: int = 10) -> dict:
    stats = {}
    for column, name in enumerate(feature_names):
        values = X[:, column]
        distinct, counts = np.unique(values, return_counts=True)
        if len(distinct) <= bins:
            # Few distinct values (flags, counts): one bin per value says more than quantiles.
            stats[name] = {
                "kind": "discrete",
                "values": [float(v) for v in distinct],
                "value_fractions": [float(c) / len(values) for c in counts],
                **_moments(values),
            }
            continue
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
        # Inner edges decide the bin; values outside the training range fall into the end bins.
        bin_index = np.searchsorted(edges[1:-1], values, side="right")
        counts = np.bincount(bin_index, minlength=len(edges) - 1)
        stats[name] = {
            "kind": "continuous",
            "bin_edges": [float(e) for e in edges],
            "bin_fractions": [float(c) / len(values) for c in counts],
            **_moments(values),
        }
    return stats


def prediction_reference(scores: np.ndarray, bins: int = 10) -> dict:
    """The same statistics for the positive-class scores of held-out rows."""
    return feature_reference(scores.reshape(-1, 1), ["score"], bins)["score"]


def _moments(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max())}
