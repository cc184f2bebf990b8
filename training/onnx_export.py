"""Compiles a fitted model to ONNX and keeps it only if it answers like the framework itself.

scikit-learn goes through skl2onnx, XGBoost and LightGBM through onnxmltools. The compiled model
is kept when its probabilities (classifiers) or values (regressors) match the framework's own on
the check rows within ``rtol=ONNX_RTOL, atol=ONNX_ATOL``; otherwise the version is served
natively, and the reason is recorded in metadata.
"""

from dataclasses import dataclass

import numpy as np

ONNX_RTOL = 1e-5
ONNX_ATOL = 1e-6
ONNX_INPUT_NAME = "input"
ONNX_PROBABILITIES = "probabilities"
ONNX_VALUES = "variable"


@dataclass
class OnnxResult:
    model_bytes: bytes | None
    max_abs_diff: float | None
    reason: str  # why the model was kept or dropped, recorded in metadata


def _convert(model, framework: str, n_features: int, classifier: bool):
    if framework == "sklearn":
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        final = model.steps[-1][1] if hasattr(model, "steps") else model
        options = {type(final): {"zipmap": False}} if classifier else None
        initial = [(ONNX_INPUT_NAME, FloatTensorType([None, n_features]))]
        return convert_sklearn(model, initial_types=initial, options=options)
    import onnxmltools

    # onnxmltools' converters accept only their own tensor types (skl2onnx's are refused by type).
    from onnxmltools.convert.common.data_types import FloatTensorType

    initial = [(ONNX_INPUT_NAME, FloatTensorType([None, n_features]))]

    if framework == "xgboost":
        return onnxmltools.convert_xgboost(model, initial_types=initial)
    if framework == "lightgbm":
        return onnxmltools.convert_lightgbm(model, initial_types=initial, zipmap=False)
    raise ValueError(f"framework: no ONNX converter for {framework!r}")


def export_onnx(model, X_check: np.ndarray, expected: np.ndarray | None = None, framework: str = "sklearn",
                classifier: bool = True, check_source: str = "held-out rows") -> OnnxResult:
    """Converts and compares with ``expected`` (the framework's own answers on ``X_check``:
    probabilities [N, C] or values [N]; by default scikit-learn's predict_proba)."""
    if expected is None:
        expected = model.predict_proba(X_check)
    wanted = ONNX_PROBABILITIES if classifier else ONNX_VALUES
    try:
        import onnxruntime as ort

        onnx_model = _convert(model, framework, X_check.shape[1], classifier)
        names = [o.name for o in onnx_model.graph.output]
        if wanted not in names:
            return OnnxResult(None, None, f"conversion failed: the compiled model has no output {wanted!r} "
                                          f"(outputs: {names})")
        model_bytes = onnx_model.SerializeToString()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        got = session.run([wanted], {ONNX_INPUT_NAME: X_check.astype(np.float32)})[0]
    except Exception as exc:  # noqa: BLE001 - any converter or runtime failure leaves the native artifact alone
        return OnnxResult(None, None, f"conversion failed: {type(exc).__name__}: {exc}")
    got = got.astype(np.float64).reshape(np.shape(expected))
    max_abs_diff = float(np.max(np.abs(got - expected)))
    if not np.allclose(got, expected, rtol=ONNX_RTOL, atol=ONNX_ATOL):
        return OnnxResult(None, max_abs_diff,
                          f"dropped: answers differ from {framework}'s own by up to {max_abs_diff:.3g} "
                          f"(beyond rtol {ONNX_RTOL}, atol {ONNX_ATOL}) on {len(X_check)} {check_source}")
    return OnnxResult(model_bytes, max_abs_diff,
                      f"kept: answers within rtol {ONNX_RTOL}, atol {ONNX_ATOL} of {framework}'s own on "
                      f"{len(X_check)} {check_source}")
