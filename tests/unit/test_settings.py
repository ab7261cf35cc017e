"""Every environment variable, its default, and what happens when it holds something unusable."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sagemaker_byo import settings
from sagemaker_byo.settings import SettingsError, paths, serving


def test_paths_default_to_opt_ml():
    layout = paths({})
    assert layout.base == Path("/opt/ml")
    assert layout.model == Path("/opt/ml/model")


@pytest.mark.parametrize(("attribute", "relative"), [
    ("input_config", "input/config"),
    ("hyperparameters", "input/config/hyperparameters.json"),
    ("input_data_config", "input/config/inputdataconfig.json"),
    ("resource_config", "input/config/resourceconfig.json"),
    ("checkpoint_config", "input/config/checkpointconfig.json"),
    ("data", "input/data"),
    ("model", "model"),
    ("output", "output"),
    ("output_data", "output/data"),
    ("failure", "output/failure"),
    ("checkpoints", "checkpoints"),
])
def test_sagemaker_base_dir_moves_every_path(tmp_path, attribute, relative):
    assert getattr(paths({"SAGEMAKER_BASE_DIR": str(tmp_path)}), attribute) == tmp_path / relative


def test_channel_is_a_folder_under_input_data(tmp_path):
    assert paths({"SAGEMAKER_BASE_DIR": str(tmp_path)}).channel("training") == tmp_path / "input/data/training"


def test_empty_base_dir_means_the_default():
    assert paths({"SAGEMAKER_BASE_DIR": ""}).base == Path("/opt/ml")


def test_paths_read_the_process_environment_when_not_given_one(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert paths().base == tmp_path


def test_serving_defaults():
    config = serving({})
    assert config.port == 8080
    assert config.workers == settings.cpu_count() >= 1
    assert config.timeout == 60
    assert config.batch is False
    assert config.max_payload_mb == 6
    assert config.max_payload_bytes == 6 * 1024 * 1024
    assert config.default_accept == "text/csv"
    assert config.inference_output == "predictions"
    assert config.log_level == logging.INFO
    assert config.preload is True
    assert config.metrics is True
    assert config.log_format == "text"


@pytest.mark.parametrize(("env", "field", "expected"), [
    ({"SAGEMAKER_BIND_TO_PORT": "9090"}, "port", 9090),
    ({"SAGEMAKER_BIND_TO_PORT": " 9090 "}, "port", 9090),
    ({"SAGEMAKER_BIND_TO_PORT": ""}, "port", 8080),
    ({"MODEL_SERVER_WORKERS": "3"}, "workers", 3),
    ({"MODEL_SERVER_TIMEOUT": "600"}, "timeout", 600),
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}, "max_payload_mb", 20),
    ({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"}, "max_payload_mb", 100),
    ({"SAGEMAKER_BATCH": "TRUE"}, "batch", True),
    ({"SAGEMAKER_BATCH": "1"}, "batch", True),
    ({"SAGEMAKER_BATCH": "false"}, "batch", False),
    ({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": " application/json "}, "default_accept", "application/json"),
    ({"SAGEMAKER_INFERENCE_OUTPUT": "Probabilities"}, "inference_output", "probabilities"),
    ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "debug"}, "log_level", logging.DEBUG),
    ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "WARNING"}, "log_level", logging.WARNING),
    ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "20"}, "log_level", 20),
    ({"MODEL_SERVER_PRELOAD": "false"}, "preload", False),
    ({"MODEL_SERVER_PRELOAD": "off"}, "preload", False),
    ({"MODEL_SERVER_PRELOAD": "yes"}, "preload", True),
    ({"MODEL_SERVER_METRICS": "false"}, "metrics", False),
    ({"MODEL_SERVER_METRICS": "true"}, "metrics", True),
    ({"SAGEMAKER_CONTAINER_LOG_FORMAT": "JSON"}, "log_format", "json"),
    ({"SAGEMAKER_CONTAINER_LOG_FORMAT": " text "}, "log_format", "text"),
])
def test_serving_reads_each_variable(env, field, expected):
    assert getattr(serving(env), field) == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"SAGEMAKER_BIND_TO_PORT": "http"}, "SAGEMAKER_BIND_TO_PORT='http' is not a whole number"),
    ({"SAGEMAKER_BIND_TO_PORT": "8080.5"}, "SAGEMAKER_BIND_TO_PORT='8080.5' is not a whole number"),
    ({"SAGEMAKER_BIND_TO_PORT": "0"}, "SAGEMAKER_BIND_TO_PORT=0 is outside 1..65535"),
    ({"SAGEMAKER_BIND_TO_PORT": "65536"}, "SAGEMAKER_BIND_TO_PORT=65536 is outside 1..65535"),
    ({"MODEL_SERVER_WORKERS": "0"}, "MODEL_SERVER_WORKERS=0 is outside 1..1024"),
    ({"MODEL_SERVER_TIMEOUT": "-1"}, "MODEL_SERVER_TIMEOUT=-1 is outside 1..3600"),
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB=0 is outside 1..1024"),
    ({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"},
     "SAGEMAKER_MAX_PAYLOAD_IN_MB=101 is outside 1..100"),
    ({"SAGEMAKER_BATCH": "maybe"}, "SAGEMAKER_BATCH='maybe' is not true or false"),
    ({"MODEL_SERVER_PRELOAD": "2"}, "MODEL_SERVER_PRELOAD='2' is not true or false"),
    ({"SAGEMAKER_INFERENCE_OUTPUT": "labels"}, "SAGEMAKER_INFERENCE_OUTPUT='labels'"),
    ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "verbose"}, "SAGEMAKER_CONTAINER_LOG_LEVEL='verbose' is not a log level"),
    ({"MODEL_SERVER_METRICS": "sometimes"}, "MODEL_SERVER_METRICS='sometimes' is not true or false"),
    ({"SAGEMAKER_CONTAINER_LOG_FORMAT": "logfmt"}, "SAGEMAKER_CONTAINER_LOG_FORMAT='logfmt': use text or json"),
])
def test_unusable_value_is_a_settings_error_naming_the_variable(env, message):
    with pytest.raises(SettingsError) as raised:
        serving(env)
    assert str(raised.value).startswith(message)


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


def test_serving_reads_the_process_environment_when_not_given_one(monkeypatch):
    monkeypatch.setenv("MODEL_SERVER_TIMEOUT", "17")
    monkeypatch.setenv("MODEL_SERVER_WORKERS", "5")
    config = serving()
    assert (config.timeout, config.workers) == (17, 5)


def test_serving_settings_are_frozen():
    config = serving({})
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("raw", "level"), [
    ("", logging.INFO), ("info", logging.INFO), ("ERROR", logging.ERROR), ("10", logging.DEBUG),
])
def test_log_level_accepts_names_and_numbers(raw, level):
    assert settings.log_level({"SAGEMAKER_CONTAINER_LOG_LEVEL": raw}) == level


def test_server_environment_fills_in_the_allocator_defaults_when_absent():
    assert settings.server_environment({}) == {
        "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
        "MALLOC_TRIM_THRESHOLD_": str(64 * 1024 * 1024),
    }
    assert settings.server_environment({}) == settings.ALLOCATOR_DEFAULTS


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_an_allocator_value_the_user_set_wins(name):
    env = settings.server_environment({name: "0"})
    assert env[name] == "0"
    (other,) = set(settings.ALLOCATOR_DEFAULTS) - {name}
    assert env[other] == settings.ALLOCATOR_DEFAULTS[other]


def test_server_environment_passes_every_other_variable_through_unchanged():
    given = {"PATH": "/usr/bin:/bin", "SAGEMAKER_BIND_TO_PORT": "9090", "MODEL_SERVER_WORKERS": "3",
             "MALLOC_ARENA_MAX": "2", "EMPTY": ""}
    env = settings.server_environment(given)
    assert {name: env[name] for name in given} == given
    assert set(env) == set(given) | set(settings.ALLOCATOR_DEFAULTS)
    assert given == {"PATH": "/usr/bin:/bin", "SAGEMAKER_BIND_TO_PORT": "9090", "MODEL_SERVER_WORKERS": "3",
                     "MALLOC_ARENA_MAX": "2", "EMPTY": ""}  # the mapping given is not changed


def test_server_environment_reads_the_process_environment_when_not_given_one(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9090")
    env = settings.server_environment()
    assert env["MALLOC_TRIM_THRESHOLD_"] == "0"
    assert env["MALLOC_MMAP_THRESHOLD_"] == settings.ALLOCATOR_DEFAULTS["MALLOC_MMAP_THRESHOLD_"]
    assert env["SAGEMAKER_BIND_TO_PORT"] == "9090"
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ  # the server's own environment is left as it is


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_allocator_value_gets_the_default(blank):
    env = settings.server_environment({"MALLOC_TRIM_THRESHOLD_": blank})
    assert env["MALLOC_TRIM_THRESHOLD_"] == settings.ALLOCATOR_DEFAULTS["MALLOC_TRIM_THRESHOLD_"]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({settings.WARM_POOL_CACHE: ""}, None),
    ({settings.WARM_POOL_CACHE: "/opt/ml/sagemaker/warmpoolcache"}, Path("/opt/ml/sagemaker/warmpoolcache")),
])
def test_the_warm_pool_cache_is_the_folder_sagemaker_names_or_none(env, expected):
    assert settings.warm_pool_cache(env) == expected
