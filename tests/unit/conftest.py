"""Unit-only fixtures: an in-process iris model, hooks built around it, and a Flask test client."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from sagemaker_byo import settings
from sagemaker_byo.serving import encoders
from sagemaker_byo.serving.app import create_app
from sagemaker_byo.serving.pipeline import Hooks
from support import IRIS_FEATURES, JOB

IRIS = JOB / "input" / "data" / "training" / "rows.csv"


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    """The tests' iris training rows: (features, labels), label first in the file."""
    frame = pd.read_csv(IRIS, header=None)
    return frame.iloc[:, 1:].to_numpy(dtype=np.float64), frame.iloc[:, 0].to_numpy()


@pytest.fixture(scope="session")
def iris_model(iris) -> DecisionTreeClassifier:
    features, labels = iris
    return DecisionTreeClassifier(random_state=0).fit(features, labels)


@pytest.fixture(scope="session")
def iris_pipeline(iris) -> Pipeline:
    """A scaler and a logistic regression fitted on a DataFrame, so the model knows its feature names
    (`feature_names_in_`) and refuses missing values."""
    features, labels = iris
    frame = pd.DataFrame(features, columns=list(IRIS_FEATURES))
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, labels)


def build_hooks(model, **overrides) -> Hooks:
    """Hooks as predictor.py wires them, around an already built model; override any of them. Each
    hook takes the request's `Invocation` as its last argument."""
    hooks = Hooks(
        model_fn=lambda model_dir: model,
        input_fn=lambda body, content_type, invocation: invocation.conform(invocation.decode(body, content_type)),
        predict_fn=lambda data, loaded, invocation: loaded.predict(data),
        output_fn=lambda prediction, accept, invocation: encoders.encode(prediction, accept),
        accept_types=tuple(encoders.ENCODERS),
    )
    return dataclasses.replace(hooks, **overrides)


def build_config(**overrides) -> settings.Serving:
    """Serving settings as an empty environment gives them, with some fields replaced."""
    return dataclasses.replace(settings.serving({}), **overrides)


@pytest.fixture
def make_hooks():
    """`make_hooks(model, **overrides)`: Hooks as predictor.py wires them, around a given model."""
    return build_hooks


@pytest.fixture
def make_config():
    """`make_config(**overrides)`: Serving settings of an empty environment, some fields replaced."""
    return build_config


@pytest.fixture
def make_client(tmp_path: Path, iris_model):
    """`make_client(hooks=..., config=...)`: a Flask test client of an app built from those."""

    def build(hooks: Hooks | None = None, config: settings.Serving | None = None):
        app = create_app(
            hooks or build_hooks(iris_model),
            config or build_config(),
            settings.paths({settings.BASE_DIR: str(tmp_path / "ml")}),
        )
        return app.test_client()

    return build


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture(scope="module")
def predictor(trained_dir: Path):
    """The tests' predictor.py (tests/fixture_fork/) imported against a trained /opt/ml (it builds
    its app at import time)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(settings.BASE_DIR, str(trained_dir))
        for name in list(os.environ):
            if name.startswith(("SAGEMAKER_", "MODEL_SERVER_")) and name != settings.BASE_DIR:
                patch.delenv(name)
        if "predictor" in sys.modules:
            module = importlib.reload(sys.modules["predictor"])
        else:
            module = importlib.import_module("predictor")
        yield module


@pytest.fixture
def serve_model(make_client, make_hooks, make_config, predictor):
    """`serve_model(model, **config)`: a test client of the app the tests' predictor.py builds, around `model`."""

    def build(model, **config):
        hooks = make_hooks(model, input_fn=predictor.input_fn, predict_fn=predictor.predict_fn,
                           output_fn=predictor.output_fn)
        return make_client(hooks, make_config(**config))

    return build
