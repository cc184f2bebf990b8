"""The ceiling for any server on uvicorn: a bare ASGI callable that answers v2 infer with ONNX Runtime.

No routing, no validation, no metrics, no logging: what is left is uvicorn's HTTP protocol,
orjson and the model call. The benchmark runs it (``--servers ...,ceiling``) to tell how much of
our server's cost per request is its own and how much is the stack it stands on. Not a server to
use: it trusts its input.

    MODEL_PATH=models/fraud/1.0.0 uvicorn server_ceiling_app:app --app-dir bench
"""

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson

MODEL_DIR = Path(os.environ["MODEL_PATH"])
_meta = json.loads((MODEL_DIR / "metadata.json").read_text())
_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
_session = ort.InferenceSession(str(MODEL_DIR / "model.onnx"), _options, providers=["CPUExecutionProvider"])
_input = _session.get_inputs()[0].name
_onnx = _meta.get("onnx") or {}
# Classifiers answer probabilities as predict_proba, regressors values as predict (our names).
_outputs, _v2_name = (([_onnx["values_output"]], "predict") if "values_output" in _onnx
                      else ([_onnx.get("probabilities_output", "probabilities")], "predict_proba"))
_name = _meta.get("name", "fraud")
_headers = [(b"content-type", b"application/json")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":  # readiness: the model loaded at import
        await send({"type": "http.response.start", "status": 200, "headers": _headers})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    tensor = orjson.loads(body)["inputs"][0]
    X = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    proba = _session.run(_outputs, {_input: X})[0]
    out = orjson.dumps({"model_name": _name, "outputs": [
        {"name": _v2_name, "shape": list(proba.shape), "datatype": "FP32", "data": proba.ravel()}]},
        option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_headers, (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
