"""`mlserving train` end to end on small data: the registry entry, its metadata and artifacts."""

import json

import joblib
import numpy as np
import onnxruntime as ort
import pytest
from mlserving.cli.main import main
from mlserving.training.data import make_fraud_dataset
from mlserving.training.registry import RegistryError, read_metadata, sha256_file, verify_artifacts
from mlserving.training.train import train_version

SMALL = ["--samples", "1500", "--n-estimators", "10"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    assert main(["train", "--model", "fraud", "--version", "1.0.0", "--out", str(root), *SMALL]) == 0
    return root / "fraud" / "1.0.0"


def test_version_directory_holds_the_artifacts(trained):
    assert sorted(p.name for p in trained.iterdir()) == ["metadata.json", "model.joblib", "model.onnx"]


def test_metadata_content(trained):
    metadata = json.loads((trained / "metadata.json").read_text())
    assert metadata["name"] == "fraud" and metadata["version"] == "1.0.0"
    assert metadata["created_at"].endswith("+00:00")
    assert metadata["algorithm"] == "random_forest"
    assert metadata["hyperparameters"]["n_estimators"] == 10 and metadata["hyperparameters"]["max_depth"] == 10
    assert metadata["n_features"] == 20 == len(metadata["feature_names"])
    assert metadata["decision_threshold"] == 0.5
    for key in ("roc_auc", "precision", "recall", "f1"):
        assert 0.0 <= metadata["metrics"][key] <= 1.0
    assert metadata["metrics"]["roc_auc"] > 0.7
    reference = metadata["reference"]["features"]
    assert set(reference) == set(metadata["feature_names"])
    for stats in reference.values():
        assert len(stats["bin_edges"]) == len(stats["bin_fractions"]) + 1
        assert abs(sum(stats["bin_fractions"]) - 1.0) < 1e-9
        assert stats["bin_edges"] == sorted(stats["bin_edges"])
    assert metadata["library_versions"]["scikit-learn"] and metadata["library_versions"]["onnxruntime"]
    assert metadata["onnx"]["max_abs_diff"] <= 1e-5


def test_artifact_hashes_match(trained):
    metadata = read_metadata(trained)
    assert set(metadata["artifacts"]) == {"model.joblib", "model.onnx"}
    for name, entry in metadata["artifacts"].items():
        assert entry["sha256"] == sha256_file(trained / name)
        assert entry["bytes"] == (trained / name).stat().st_size
    verify_artifacts(trained, metadata)


def test_verification_names_a_damaged_file(trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="model.joblib: sha256"):
        verify_artifacts(copy, read_metadata(copy))


def test_onnx_matches_scikit_learn_on_new_data(trained):
    X = make_fraud_dataset(samples=500, seed=99).X
    estimator = joblib.load(trained / "model.joblib")
    session = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    assert "probabilities" in outputs  # zipmap off: a plain tensor
    onnx_proba = session.run(["probabilities"], {"input": X.astype(np.float32)})[0]
    assert onnx_proba.shape == (500, 2)
    assert np.max(np.abs(onnx_proba - estimator.predict_proba(X))) <= 1e-5


def test_retraining_refuses_without_force(trained, capsys):
    root = trained.parent.parent
    before = (trained / "metadata.json").read_text()
    assert main(["train", "--version", "1.0.0", "--out", str(root), *SMALL]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (trained / "metadata.json").read_text() == before
    assert main(["train", "--version", "1.0.0", "--out", str(root), "--seed", "3", "--force", *SMALL]) == 0
    assert json.loads((trained / "metadata.json").read_text())["seed"] == 3
    assert not [p for p in trained.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_seeds_give_visibly_different_predictions(tmp_path):
    quiet = lambda *_: None
    a = train_version("fraud", "1.0.0", tmp_path, seed=1, samples=1500, params={"n_estimators": 10}, log=quiet)
    b = train_version("fraud", "2.0.0", tmp_path, seed=2, samples=1500, params={"n_estimators": 10}, log=quiet)
    X = make_fraud_dataset(samples=400, seed=7).X
    pa = joblib.load(a / "model.joblib").predict_proba(X)[:, 1]
    pb = joblib.load(b / "model.joblib").predict_proba(X)[:, 1]
    assert np.mean(np.abs(pa - pb)) > 0.01


@pytest.mark.parametrize("algorithm", ["logistic_regression", "gradient_boosting", "extra_trees"])
def test_other_algorithms(tmp_path, algorithm):
    args = ["train", "--version", "1.0.0", "--out", str(tmp_path), "--algorithm", algorithm, "--samples", "1000"]
    if algorithm != "logistic_regression":
        args += ["--n-estimators", "5"]
    assert main(args) == 0
    metadata = read_metadata(tmp_path / "fraud" / "1.0.0")
    assert metadata["algorithm"] == algorithm
    assert "model.onnx" in metadata["artifacts"], metadata["onnx"]["status"]


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "Fraud_Model"], "model: 'Fraud_Model' must be a lowercase DNS label"),
    (["--version", "../x"], "version: '../x' must be"),
    (["--param", "bogus=1"], "param: ['bogus'] not accepted by RandomForestClassifier"),
    (["--threshold", "1.5"], "threshold: must be between 0 and 1"),
    (["--samples", "10"], "samples: must be at least 200"),
])
def test_bad_arguments_are_named(tmp_path, capsys, args, message):
    base = {"--model": "fraud", "--version": "1.0.0"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["train", "--out", str(tmp_path), "--n-estimators", "2"]
    for flag, value in base.items():
        argv += [flag, value]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
