"""The user's own model, end to end: trained here with each framework's own API, saved with its own
save call, imported with `mlserving import`, served, and asked through every surface — /predict,
/predict/batch, v2 JSON, and the KServe and Triton clients in binary and JSON mode, from the
server and through the router. Every answer equals the framework's own predict/predict_proba."""

import json
import subprocess
import sys

import numpy as np
import pytest
from mlserving.cli.main import main
from mlserving.training.data import make_fraud_dataset, make_multiclass_dataset, make_regression_dataset
from server_testkit import start_router_to, start_uvicorn
from v2_clients import CLIENTS, INFER, MODES

pytestmark = pytest.mark.slow


def _sklearn_forest(tmp):
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    data = make_fraud_dataset(samples=800, seed=4)
    model = RandomForestClassifier(n_estimators=8, max_depth=6, random_state=0).fit(data.X, data.y)
    joblib.dump(model, tmp / "forest.joblib")
    return model, tmp / "forest.joblib", "sklearn", data.X


def _sklearn_pipeline(tmp):
    import pickle

    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    data = make_multiclass_dataset(samples=600, seed=4)
    columns = ColumnTransformer([("scaled", StandardScaler(), list(range(8))),
                                 ("ranged", MinMaxScaler(), list(range(8, 12)))])
    model = Pipeline([("columns", columns), ("classify", LogisticRegression(max_iter=500))]).fit(data.X, data.y)
    with open(tmp / "pipeline.pkl", "wb") as f:
        pickle.dump(model, f)
    return model, tmp / "pipeline.pkl", "sklearn", data.X


def _sklearn_regressor(tmp):
    import joblib
    from sklearn.ensemble import GradientBoostingRegressor

    data = make_regression_dataset(samples=600, seed=4)
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(data.X, data.y)
    joblib.dump(model, tmp / "regressor.joblib")
    return model, tmp / "regressor.joblib", "sklearn", data.X


def _xgboost(tmp, regression: bool):
    xgboost = pytest.importorskip("xgboost")
    data = (make_regression_dataset if regression else make_fraud_dataset)(samples=600, seed=4)
    cls = xgboost.XGBRegressor if regression else xgboost.XGBClassifier
    model = cls(n_estimators=15, max_depth=4, n_jobs=1).fit(data.X, data.y)
    path = tmp / ("xgb.ubj" if regression else "xgb.json")  # both of its own formats
    model.save_model(path)
    return model, path, "xgboost", data.X


def _lightgbm_classifier(tmp):
    lightgbm = pytest.importorskip("lightgbm")
    data = make_fraud_dataset(samples=800, seed=4)
    model = lightgbm.LGBMClassifier(n_estimators=15, num_leaves=8, n_jobs=1, verbose=-1).fit(data.X, data.y)
    model.booster_.save_model(str(tmp / "lgb.txt"))
    return model, tmp / "lgb.txt", "lightgbm", data.X


KINDS = {"sklearn-forest": _sklearn_forest, "sklearn-pipeline": _sklearn_pipeline,
         "sklearn-regressor": _sklearn_regressor, "xgboost-classifier": lambda tmp: _xgboost(tmp, False),
         "xgboost-regressor": lambda tmp: _xgboost(tmp, True), "lightgbm-classifier": _lightgbm_classifier}


def own_answers(model, X):
    """The framework's own predict (labels or values) and predict_proba (None for regressors)."""
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    return model.predict(X), proba


def as_text(values) -> list:
    return [v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v
            for v in np.asarray(values, dtype=object).reshape(-1)]


@pytest.fixture(scope="module", params=list(KINDS))
def imported(request, tmp_path_factory, log_dir):
    tmp = tmp_path_factory.mktemp(request.param)
    model, artifact, framework, X_train = KINDS[request.param](tmp)
    reference = tmp / "reference.csv"
    header = ",".join(f"f{i}" for i in range(X_train.shape[1]))
    np.savetxt(reference, X_train[:300], delimiter=",", header=header, comments="")
    name = request.param.split("-")[0] + "-model"
    assert main(["import", "--model", name, "--version", "1", "--framework", framework, "--out", str(tmp / "registry"),
                 "--reference", str(reference), str(artifact)]) == 0
    version_dir = tmp / "registry" / name / "1"
    server = start_uvicorn(version_dir, log_dir)
    router = start_router_to(server.url, log_dir, "1")
    # Test rows as float32 values: what the v2 clients send as FP32 and ONNX compares in.
    X = np.random.default_rng(8).normal(0.0, 1.5, size=(7, X_train.shape[1])).astype(np.float32).astype(np.float64)
    yield {"model": model, "name": name, "dir": version_dir, "server": server, "router": router, "X": X,
           "framework": framework}
    router.stop()
    server.stop()


def test_metadata_records_the_runtime_and_why(imported):
    metadata = json.loads((imported["dir"] / "metadata.json").read_text())
    serving = metadata["serving"]
    assert metadata["framework"] == imported["framework"]
    assert serving["runtime"] in ("onnx", imported["framework"])
    assert serving["reason"].startswith("kept" if serving["runtime"] == "onnx" else ("dropped", "conversion failed"))
    assert ("model.onnx" in metadata["artifacts"]) == (serving["runtime"] == "onnx")
    assert metadata["reference"]["rows"] == 300


def test_seed_api_equals_the_framework(imported, client):
    model, X, url = imported["model"], imported["X"], imported["server"].url
    labels, proba = own_answers(model, X)
    one = client.post(f"{url}/predict", json={"features": X[0].tolist()}).json()
    batch = client.post(f"{url}/predict/batch", json={"instances": X.tolist()}).json()["predictions"]
    if proba is None:
        np.testing.assert_allclose([one["prediction"]] + [b["prediction"] for b in batch],
                                   np.concatenate([labels[:1], labels]), rtol=1e-5)
    elif proba.shape[1] == 2:
        np.testing.assert_allclose([one["fraud_probability"]] + [b["fraud_probability"] for b in batch],
                                   np.concatenate([proba[:1, 1], proba[:, 1]]), rtol=1e-5, atol=1e-6)
    else:
        assert [b["label"] for b in batch] == as_text(labels)
        got = [[b["probabilities"][str(c)] for c in model.classes_] for b in batch]
        np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-6)


CALLS = [(c, m, v) for c in CLIENTS for m in MODES for v in ("server", "router")] + [("plain-json", "json", "server")]


@pytest.mark.parametrize(("client_name", "mode", "via"), CALLS)
def test_v2_clients_equal_the_framework(imported, client, client_name, mode, via):
    model, X = imported["model"], imported["X"]
    url = imported["server"].url if via == "server" else imported["router"].url
    labels, proba = own_answers(model, X)
    names = ["predict"] if proba is None else ["predict", "predict_proba"]
    if client_name == "plain-json":
        body = client.post(f"{url}/v2/models/{imported['name']}/infer", json={"inputs": [
            {"name": "x", "datatype": "FP64", "shape": list(X.shape), "data": X.tolist()}]}).json()
        got = {o["name"]: np.asarray(o["data"], dtype=object) for o in body["outputs"]}
    else:
        got = INFER[client_name](url, imported["name"], X, names, mode)
    if proba is None:
        np.testing.assert_allclose(np.asarray(got["predict"], dtype=float).reshape(-1), labels, rtol=1e-5)
        return
    assert as_text(got["predict"]) == as_text(labels)
    np.testing.assert_allclose(np.asarray(got["predict_proba"], dtype=float).reshape(proba.shape), proba,
                               rtol=1e-5, atol=1e-6)


def test_a_server_imports_only_the_framework_it_serves(imported):
    code = ("import json, sys; from pathlib import Path; from mlserving.server.config import ServerConfig; "
            "from mlserving.server.model_state import ModelState; "
            f"s = ModelState(ServerConfig(model_path=Path({str(imported['dir'])!r}))); s.load(); "
            "assert s.ready, s.not_ready_reason; "
            "print(json.dumps([s.model.format, [m for m in ('sklearn', 'xgboost', 'lightgbm') if m in sys.modules]]))")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    served, frameworks = json.loads(done.stdout)
    # The xgboost and lightgbm packages import scikit-learn themselves when it is installed.
    allowed = {served, "sklearn"} if served in ("xgboost", "lightgbm") else {served}
    assert set(frameworks) <= allowed and (served == "onnx" or served in frameworks)
