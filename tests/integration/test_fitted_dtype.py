"""The model is served the dtype it was fitted on, end to end: a fork's KMeans (scikit-learn's
predicts only the dtype it was fitted on) trained by the real `algo/train` on the channel's
float32 numbers, unsupervised, and served by the real `algo/serve` (nginx, gunicorn), answers
every CSV, JSON and JSON Lines request exactly as its own `predict` does on the same rows as
float32. A model that does not predict its own training rows fails the job naming why, with no
model saved."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from forks import make_fork, run_train
from support import Server, bodies, have_nginx, require

FORK = textwrap.dedent('''\
    """A fork of clustering models, and one that cannot predict."""

    from sklearn.cluster import KMeans

    from sagemaker_byo import Algorithm, Param, tabular


    class Forgetful:
        """Fitted, but predicts nothing: as a model that did not keep what it learnt."""

        def predict(self, features):
            raise RuntimeError("the centroids were not kept")


    def kmeans(scale):
        return lambda params, task, features: tabular(features, KMeans(params["k"], n_init=2, random_state=0), scale)


    ALGORITHMS = {
        "kmeans": Algorithm({"k": Param(int, 4, low=1)}, build=kmeans(False), tasks=("unsupervised",)),
        "scaled_kmeans": Algorithm({"k": Param(int, 4, low=1)}, build=kmeans(True), tasks=("unsupervised",)),
        "forgetful": Algorithm({}, fit=lambda params, task, features, target: Forgetful(), tasks=("unsupervised",)),
    }
''')


def features(count: int, seed: int) -> np.ndarray:
    """Numbers with more digits than float32 keeps: the dtype changes them."""
    return np.random.default_rng(seed).normal(3.0, 2.0, size=(count, 3)).round(7)


def make_job(ml: Path, algorithm: str) -> Path:
    """Features only (`text/csv;label_size=0`), headerless."""
    config = ml / "input" / "config"
    config.mkdir(parents=True)
    (ml / "input" / "data" / "training").mkdir(parents=True)
    pd.DataFrame(features(300, 0)).to_csv(ml / "input" / "data" / "training" / "rows.csv", index=False, header=False)
    (config / "hyperparameters.json").write_text(json.dumps({"algorithm": algorithm}))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {"training": {"ContentType": "text/csv;label_size=0", "TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for folder in ("model", "output"):
        (ml / folder).mkdir()
    return ml


@pytest.fixture(scope="module")
def fork(tmp_path_factory):
    return make_fork(tmp_path_factory.mktemp("fork") / "algo", FORK)


@pytest.fixture(scope="module", params=["kmeans", "scaled_kmeans"])
def served(request, fork, tmp_path_factory):
    """A KMeans fork trained by the real `train`, served by the real `serve`."""
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    ml = make_job(tmp_path_factory.mktemp(request.param) / "ml", request.param)
    result = run_train(fork, ml)
    assert result.returncode == 0, result.stderr[-3000:]
    server = Server(ml, algo=fork).start()
    yield ml, result, server
    server.stop()


def test_a_kmeans_fork_trains_without_a_warning_and_records_float32(served):
    ml, result, _ = served
    assert "does not predict" not in result.stderr
    description = json.loads((ml / "model" / "model.json").read_text())
    assert description["input"]["dtype"] == "float32" and description["input"]["measured"]


def test_every_request_answers_as_the_models_own_predict_on_float32_rows(served):
    ml, _, server = served
    model = joblib.load(ml / "model" / "model.joblib")
    for count, seed in ((1, 1), (7, 2), (2000, 3)):
        rows = features(count, seed)
        want = model.predict(rows.astype(np.float32)).tolist()
        for content_type, body in bodies(rows).items():
            for accept in ("text/csv", "application/json"):
                response = server.invoke(body, content_type, Accept=accept)
                assert response.status_code == 200, (content_type, response.text[:300])
                got = (response.json()["predictions"] if accept == "application/json"
                       else [int(line) for line in response.text.splitlines()])
                assert got == want, (content_type, accept, count)


def test_a_number_float32_cannot_hold_is_a_400_naming_its_cell(served):
    _, _, server = served
    response = server.invoke(b"1.5,2.5,3.5\n1.5,1e39,3.5\n", "text/csv")
    assert response.status_code == 400
    assert response.text.strip() == ("row 2, column 2 is too large for the float32 numbers this model was trained on "
                                      "(over 3.4e38); send numbers within that")


def test_a_model_that_does_not_predict_its_training_rows_fails_the_job_naming_why(fork, tmp_path):
    ml = make_job(tmp_path / "ml", "forgetful")
    result = run_train(fork, ml)
    assert result.returncode == 2, result.stderr[-3000:]
    failure = (ml / "output" / "failure").read_text()
    assert failure.startswith(  # the failure file's kind, then the error's
        "AlgorithmError: AlgorithmError: the fitted model (Forgetful) does not predict its own training rows "
        "(numbers as float32, as it was fitted on them): RuntimeError: the centroids were not kept; a model the "
        "server could not use is not saved"), failure
    assert list((ml / "model").iterdir()) == []
