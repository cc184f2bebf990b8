"""Compiles a fitted estimator to ONNX and keeps it only if it answers like scikit-learn."""

from dataclasses import dataclass

import numpy as np

ONNX_TOLERANCE = 1e-5
ONNX_INPUT_NAME = "input"
ONNX_PROBABILITIES = "probabilities"


@dataclass
class OnnxResult:
    model_bytes: bytes | None
    max_abs_diff: float | None
    reason: str  # why the model was kept or dropped, recorded in metadata


def export_onnx(estimator, X_check: np.ndarray) -> OnnxResult:
    """Converts with skl2onnx (probabilities as a plain [N, 2] tensor, no ZipMap) and compares
    the probabilities with scikit-learn's on ``X_check``."""
    try:
        import onnxruntime as ort
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        onnx_model = convert_sklearn(
            estimator,
            initial_types=[(ONNX_INPUT_NAME, FloatTensorType([None, X_check.shape[1]]))],
            options={type(final): {"zipmap": False}},
        )
        model_bytes = onnx_model.SerializeToString()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        onnx_proba = session.run([ONNX_PROBABILITIES], {ONNX_INPUT_NAME: X_check.astype(np.float32)})[0]
    except Exception as exc:  # noqa: BLE001 - any converter or runtime failure leaves the joblib artifact alone
        return OnnxResult(None, None, f"conversion failed: {type(exc).__name__}: {exc}")
    sk_proba = estimator.predict_proba(X_check)
    max_abs_diff = float(np.max(np.abs(onnx_proba.astype(np.float64) - sk_proba)))
    if not max_abs_diff <= ONNX_TOLERANCE:
        return OnnxResult(None, max_abs_diff,
                          f"dropped: probabilities differ from scikit-learn by {max_abs_diff:.3g} > {ONNX_TOLERANCE}")
    return OnnxResult(model_bytes, max_abs_diff,
                      f"kept: probabilities within {ONNX_TOLERANCE} of scikit-learn on {len(X_check)} held-out rows")
