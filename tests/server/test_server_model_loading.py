"""Model loading rules in-process (real files, real runtimes): which artifact is chosen, and
why a version directory is refused. The HTTP side of not-ready is in test_server_runtimes.py."""

import asyncio
import json

import numpy as np
import pytest
from mlserving.server.config import ServerConfig
from mlserving.server.model_state import ModelState


def drop_onnx(directory):
    metadata = json.loads((directory / "metadata.json").read_text())
    del metadata["artifacts"]["model.onnx"]
    (directory / "model.onnx").unlink()
    (directory / "metadata.json").write_text(json.dumps(metadata))


def loaded(directory, **settings) -> ModelState:
    state = ModelState(ServerConfig(model_path=directory, **settings))
    state.load()
    return state


def test_prefers_onnx_and_calls_it_inline(model_registry):
    state = loaded(model_registry / "fraud" / "1.0.0")
    assert state.ready and state.model.format == "onnx" and state.dispatch_mode == "inline"
    assert state.model.n_features == 20 and state.model.task.threshold == 0.5


def test_sklearn_dispatch_modes(model_registry):
    path = model_registry / "fraud" / "1.0.0"
    assert loaded(path, model_format="sklearn").dispatch_mode == "batched"
    state = loaded(path, model_format="sklearn", batching="off")
    assert state.dispatch_mode == "thread"
    X = np.zeros((3, 20))
    proba = asyncio.run(state.predict(X))
    assert proba.shape == (3, 2)
    state.close()
    # A model cheaper than INLINE_MAX_US is still batched when BATCHING=on.
    assert loaded(path, batching="on").dispatch_mode == "batched"


def test_falls_back_to_joblib_without_onnx(model_copy):
    directory = model_copy()
    drop_onnx(directory)
    assert loaded(directory).model.format == "sklearn"


def test_allow_pickle_false_refuses_joblib(model_copy):
    directory = model_copy()
    drop_onnx(directory)
    state = loaded(directory, allow_pickle=False)
    assert not state.ready and "ALLOW_PICKLE=false" in state.not_ready_reason
    forced = loaded(directory, allow_pickle=False, model_format="sklearn")
    assert not forced.ready and "ALLOW_PICKLE=false" in forced.not_ready_reason


def test_allow_pickle_false_still_serves_onnx(model_registry):
    assert loaded(model_registry / "fraud" / "1.0.0", allow_pickle=False).model.format == "onnx"


def test_model_format_onnx_needs_the_file(model_copy):
    directory = model_copy()
    drop_onnx(directory)
    state = loaded(directory, model_format="onnx")
    assert not state.ready and "MODEL_FORMAT=onnx" in state.not_ready_reason


@pytest.mark.parametrize("filename", ["model.joblib", "model.onnx", "metadata.json"])
def test_missing_file_is_named(model_copy, filename):
    directory = model_copy()
    (directory / filename).unlink()
    state = loaded(directory)
    assert not state.ready and filename in state.not_ready_reason and "missing" in state.not_ready_reason


def test_metadata_without_feature_names(model_copy):
    directory = model_copy()
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["feature_names"] = []
    (directory / "metadata.json").write_text(json.dumps(metadata))
    state = loaded(directory)
    assert not state.ready and "feature_names" in state.not_ready_reason


def test_unreadable_onnx_with_matching_hash(model_copy):
    # A corrupt file whose hash was recorded as such passes verification and fails at load.
    from mlserving.training.registry import sha256_file

    directory = model_copy()
    (directory / "model.onnx").write_bytes(b"not an onnx model")
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["artifacts"]["model.onnx"]["sha256"] = sha256_file(directory / "model.onnx")
    (directory / "metadata.json").write_text(json.dumps(metadata))
    state = loaded(directory)
    assert not state.ready and "onnxruntime cannot load it" in state.not_ready_reason


def test_model_path_that_is_not_a_directory(tmp_path):
    state = loaded(tmp_path / "nothing-here")
    assert not state.ready and "is not a directory" in state.not_ready_reason
