"""The seed's prediction API: ``POST /predict`` and ``POST /predict/batch``.

/predict        {"features": [20 numbers] | {name: number}, "request_id": "..."?}
             -> {"request_id", "is_fraud", "fraud_probability", "model_name", "model_version"}
/predict/batch  {"instances": [[20 numbers], ...], "request_id": "..."?}
             -> {"request_id", "predictions": [{"is_fraud", "fraud_probability"}, ...],
                 "model_name", "model_version"}
"""

import orjson
from mlserving.server.hotpath import Call, HotResult
from mlserving.server.validation import (
    InputError,
    check_request_id,
    feature_row,
    parse_json,
    require_object,
)


def _request_id(document: dict, call: Call) -> None:
    value = document.get("request_id")
    if value is not None:
        call.request_id = check_request_id(value)


async def predict(call: Call) -> HotResult:
    document = require_object(parse_json(call.body))
    _request_id(document, call)
    model = call.state.model
    if "features" not in document:
        raise InputError("features", f"is required: an array of {model.n_features} numbers")
    row = feature_row(document["features"], model.n_features, model.feature_index, "features")
    proba = await call.state.predict_proba(call.state.to_array([row]))
    probability = float(proba[0, model.positive_index])
    is_fraud = probability >= model.threshold
    body = orjson.dumps({
        "request_id": call.rid(),
        "is_fraud": is_fraud,
        "fraud_probability": probability,
        "model_name": model.name,
        "model_version": model.version,
    })
    return HotResult(body, rows=1, frauds=int(is_fraud))


async def predict_batch(call: Call) -> HotResult:
    document = require_object(parse_json(call.body))
    _request_id(document, call)
    model = call.state.model
    limit = call.state.config.max_batch_instances
    instances = document.get("instances")
    if instances is None:
        raise InputError("instances", f"is required: an array of rows of {model.n_features} numbers")
    if type(instances) is not list:
        raise InputError("instances", "must be an array of rows")
    if not instances:
        raise InputError("instances", "must hold at least 1 row, got 0")
    if len(instances) > limit:
        raise InputError("instances", f"must hold at most {limit} rows (MAX_BATCH_INSTANCES), got {len(instances)}",
                         status=413)
    rows = [feature_row(r, model.n_features, model.feature_index, f"instances[{i}]") for i, r in enumerate(instances)]
    proba = await call.state.predict_proba(call.state.to_array(rows))
    probabilities = proba[:, model.positive_index].tolist()
    threshold = model.threshold
    predictions = [{"is_fraud": p >= threshold, "fraud_probability": p} for p in probabilities]
    frauds = sum(1 for p in probabilities if p >= threshold)
    body = orjson.dumps({
        "request_id": call.rid(),
        "predictions": predictions,
        "model_name": model.name,
        "model_version": model.version,
    })
    return HotResult(body, rows=len(rows), frauds=frauds)
