"""Settings from the environment: defaults, parsing, and errors that name the variable."""

from pathlib import Path

import pytest
from mlserving.server.config import ConfigError, ServerConfig


def test_defaults():
    config = ServerConfig.from_env({})
    assert config.model_path == Path("/models/current") and config.port == 8000 and config.workers == 1
    assert config.max_body_bytes == 1 << 20 and config.allow_pickle is True and config.model_format == "auto"


def test_values_are_parsed():
    config = ServerConfig.from_env({"MODEL_PATH": "/m/fraud/2.0.0", "PORT": "9001", "ALLOW_PICKLE": "false",
                                    "MODEL_FORMAT": "SKLEARN", "MAX_BATCH_TIME_MS": "2.5", "LOG_LEVEL": "DEBUG"})
    assert config.model_path == Path("/m/fraud/2.0.0") and config.port == 9001 and config.allow_pickle is False
    assert config.model_format == "sklearn" and config.max_batch_time_ms == 2.5 and config.log_level == "debug"


@pytest.mark.parametrize(("env", "message"), [
    ({"PORT": "http"}, "PORT: must be an integer"),
    ({"PORT": "70000"}, "PORT: must be 1-65535"),
    ({"WORKERS": "0"}, "WORKERS: must be at least 1"),
    ({"ALLOW_PICKLE": "perhaps"}, "ALLOW_PICKLE: must be true or false"),
    ({"MODEL_FORMAT": "pmml"}, "MODEL_FORMAT: must be auto, onnx or native"),
    ({"BATCHING": "sometimes"}, "BATCHING: must be auto, on or off"),
    ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES: must be at least 1024"),
    ({"MAX_BATCH_TIME_MS": "soon"}, "MAX_BATCH_TIME_MS: must be a number"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: must be one of"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        ServerConfig.from_env(env)


def test_serve_command_refuses_bad_settings(monkeypatch, capsys):
    import os

    from mlserving.cli.main import main

    monkeypatch.setattr(os, "environ", {"MAX_BODY_BYTES": "12"})  # `serve` writes its flags into the env
    assert main(["serve", "--model-path", "/nowhere", "--port", "8123"]) == 2
    assert "MAX_BODY_BYTES: must be at least 1024" in capsys.readouterr().err
    assert os.environ["MODEL_PATH"] == "/nowhere" and os.environ["PORT"] == "8123"
