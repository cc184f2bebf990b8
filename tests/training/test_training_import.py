"""`mlserving import` and the new `mlserving train` choices: what is written, and what is refused
(with the file and the framework named, and nothing written)."""

import json

import numpy as np
import pytest
from mlserving.cli.main import main
from mlserving.training.registry import read_metadata, verify_artifacts


def imported(tmp_path, *args) -> int:
    return main(["import", "--model", "m", "--version", "1", "--out", str(tmp_path / "registry"), *args])


@pytest.mark.parametrize("framework", ["sklearn", "xgboost", "lightgbm"])
def test_unreadable_artifact_is_named_and_nothing_is_written(tmp_path, capsys, framework):
    pytest.importorskip({"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm"}[framework])
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"\x00not a model at all\xff" * 10)
    assert imported(tmp_path, "--framework", framework, str(junk)) == 2
    err = capsys.readouterr().err
    assert str(junk) in err and framework in err
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").rglob("*"))


def test_missing_file_and_wrong_reference(tmp_path, capsys):
    import joblib
    from sklearn.linear_model import LinearRegression

    assert imported(tmp_path, "--framework", "sklearn", str(tmp_path / "nope.joblib")) == 2
    assert "nope.joblib: no such file (framework sklearn)" in capsys.readouterr().err
    model = LinearRegression().fit(np.random.default_rng(0).normal(size=(50, 3)), np.arange(50.0))
    joblib.dump(model, tmp_path / "lr.joblib")
    reference = tmp_path / "ref.csv"
    reference.write_text("a,b\n1,2\n3,4\n")
    assert imported(tmp_path, "--framework", "sklearn", "--reference", str(reference), str(tmp_path / "lr.joblib")) == 2
    assert "needs the model's 3 feature columns, has 2" in capsys.readouterr().err
    reference.write_text("a,b,c\n1,2,x\n")
    assert imported(tmp_path, "--framework", "sklearn", "--reference", str(reference), str(tmp_path / "lr.joblib")) == 2
    assert "feature columns must be numbers" in capsys.readouterr().err
    assert not any((tmp_path / "registry").rglob("metadata.json"))


def test_without_reference_onnx_is_checked_on_generated_rows(tmp_path, capsys):
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(50.0, 20.0, size=(300, 4))
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, (X[:, 0] > 50).astype(int))
    joblib.dump(model, tmp_path / "rf.joblib")
    assert imported(tmp_path, "--framework", "sklearn", str(tmp_path / "rf.joblib")) == 0
    assert "no --reference" in capsys.readouterr().out
    directory = tmp_path / "registry" / "m" / "1"
    metadata = read_metadata(directory)
    verify_artifacts(directory, metadata)
    assert "split-point ranges of" in metadata["onnx"]["check"] and "reference" not in metadata
    assert metadata["task"] == "binary" and metadata["feature_names"] == ["f0", "f1", "f2", "f3"]


@pytest.mark.parametrize(("algorithm", "dataset", "native"), [
    ("xgboost", "fraud", "model.xgb.json"), ("lightgbm", "multiclass", "model.lgb.txt"),
    ("random_forest", "regression", "model.joblib"), ("logistic_regression", "multiclass", "model.joblib"),
])
def test_train_algorithms_and_datasets(tmp_path, algorithm, dataset, native):
    pytest.importorskip(algorithm if algorithm in ("xgboost", "lightgbm") else "sklearn")
    args = ["train", "--model", "m", "--version", "1", "--out", str(tmp_path), "--algorithm", algorithm,
            "--dataset", dataset, "--samples", "400"]
    if algorithm != "logistic_regression":
        args += ["--n-estimators", "5"]
    assert main(args) == 0
    metadata = json.loads((tmp_path / "m" / "1" / "metadata.json").read_text())
    assert native in metadata["artifacts"] and metadata["algorithm"] == algorithm and metadata["dataset"] == dataset
    assert metadata["task"] == {"fraud": "binary", "multiclass": "multiclass", "regression": "regression"}[dataset]
    if dataset == "multiclass":
        assert metadata["classes"] == ["electronics", "groceries", "travel"]
    assert metadata["serving"]["runtime"] in ("onnx", metadata["framework"]) and metadata["serving"]["reason"]
