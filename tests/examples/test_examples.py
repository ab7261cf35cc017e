"""The forks in examples/, as a user makes them: algo/ copied, the example's files copied over it,
/opt/ml with the example's hyperparameters (and, for text, its data), the fork's real `train`,
then the fork's real `serve` (nginx, gunicorn, 2 workers) answering what the saved model's own
`predict` (and `predict_proba`) answers on the same rows. The example goes over the tests' own
fork and job (tests/fixture_fork/), so what a fork changed in its own algorithm, hooks or job changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from forks import run_train
from support import IRIS_FEATURES, JOB, REPO, Server, copy_test_dir, have_nginx, plumbing_algo, require

EXAMPLES = REPO / "examples"
IRIS = JOB / "input" / "data" / "training" / "rows.csv"


def fork(tmp_path: Path, example: str, files: dict[str, str]) -> Path:
    """The tests' algo/ copied to tmp_path/algo with the example's files (`{example file: algo file}`) over it."""
    destination = tmp_path / "algo"
    shutil.copytree(plumbing_algo(), destination, ignore=shutil.ignore_patterns("__pycache__"))
    for source, target in files.items():
        shutil.copy(EXAMPLES / example / source, destination / target)
    return destination


def opt_ml(tmp_path: Path, example: str, data: bool = False) -> Path:
    """/opt/ml with the tests' job, the example's hyperparameters.json (if any) and its data (if asked)."""
    base = copy_test_dir(tmp_path / "ml")
    hyperparameters = EXAMPLES / example / "hyperparameters.json"
    if hyperparameters.exists():
        shutil.copy(hyperparameters, base / "input" / "config" / "hyperparameters.json")
    if data:
        for channel in ("training", "validation"):
            shutil.rmtree(base / "input" / "data" / channel)
            shutil.copytree(EXAMPLES / example / "data" / channel, base / "input" / "data" / channel)
    return base


def trained_and_served(tmp_path_factory, example: str, files: dict[str, str], data: bool = False):
    """Train the fork, check it wrote its model, and start its server; yields (model, server, base)."""
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    tmp = tmp_path_factory.mktemp(example)
    algo = fork(tmp, example, files)
    base = opt_ml(tmp, example, data)
    result = run_train(algo, base)
    assert result.returncode == 0, result.stdout + result.stderr
    model_dir = base / "model"
    assert (model_dir / "model.joblib").is_file() and (model_dir / "model.json").is_file()
    assert not (base / "output" / "failure").exists()
    sys.path.insert(0, str(algo))  # the model may pickle the fork's own code
    try:
        model = joblib.load(model_dir / "model.joblib")
    finally:
        sys.path.remove(str(algo))
    server = Server(base, algo=algo).start()
    return model, server, base


def iris_rows() -> list[list[float]]:
    table = pd.read_csv(IRIS, header=None)
    return table.iloc[::7, 1:].to_numpy(dtype=np.float64).tolist()  # a spread of the three classes


def csv_body(rows: list[list]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def own_predict(model, data) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [str(label) for label in model.predict(data)]


# -- knn: a new estimator with its own hyperparameters -------------------------------------

@pytest.fixture(scope="module")
def knn(tmp_path_factory):
    model, server, base = trained_and_served(tmp_path_factory, "knn", {"algorithm.py": "algorithm.py"})
    yield model, server, base
    server.stop()


def test_knn_trains_the_pipeline_with_its_hyperparameters(knn):
    model, _, base = knn
    assert [name for name, _ in model.steps] == ["standardscaler", "kneighborsclassifier"]
    assert model[-1].n_neighbors == 7 and model[-1].weights == "distance"
    description = json.loads((base / "model" / "model.json").read_text())
    assert description["algorithm"] == "knn" and description["task"] == "classification"
    assert description["hyperparameters"]["n_neighbors"] == 7


def test_knn_answers_its_own_predict_in_every_content_type(knn):
    model, server, _ = knn
    rows = iris_rows()
    want = own_predict(model, np.array(rows))
    bodies = {
        "text/csv": csv_body(rows),
        "application/json": json.dumps(rows).encode(),
        "application/jsonlines": "".join(json.dumps(row) + "\n" for row in rows).encode(),
    }
    for content_type, body in bodies.items():
        response = server.invoke(body, content_type, Accept="application/json")
        assert response.status_code == 200, (content_type, response.text)
        assert [str(v) for v in response.json()["predictions"]] == want, content_type
    response = server.invoke(csv_body(rows), "text/csv", Accept="text/csv")
    assert response.status_code == 200 and response.text.splitlines() == want


def test_knn_refuses_a_missing_value_naming_its_row_and_column(knn):
    _, server, _ = knn
    rows = [[str(v) for v in row] for row in iris_rows()[:4]]
    rows[2][1] = ""
    response = server.invoke(csv_body(rows), "text/csv")
    assert response.status_code == 400, response.text
    assert response.text.startswith("row 3, column 2 is missing"), response.text
    assert "Traceback" not in response.text


# -- text: a TF-IDF classifier on its own bundled data --------------------------------------

REVIEWS = ["lovely lamp", "broken chair", "great kettle, boils fast and looks nice", 'a "sturdy" desk',
           "the toaster burns bread", "soft towels", "waste of money, broke in a week", "happy"]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    model, server, base = trained_and_served(tmp_path_factory, "text", {"algorithm.py": "algorithm.py"}, data=True)
    yield model, server, base
    server.stop()


def test_text_trains_on_the_bundled_reviews(text):
    model, _, base = text
    training = pd.read_csv(EXAMPLES / "text" / "data" / "training" / "reviews.csv")
    assert list(training.columns) == ["label", "review"] and set(training["label"]) == {"good", "bad"}
    assert any("," in review for review in training["review"])  # quoted cells are read as one
    assert set(map(str, model.classes_)) == {"good", "bad"}
    assert model[-1].C == 10.0
    description = json.loads((base / "model" / "model.json").read_text())
    assert description["target"] == "label"


def test_text_answers_its_own_predict_in_every_content_type(text):
    model, server, _ = text
    want = own_predict(model, pd.DataFrame({"review": REVIEWS}, dtype=object))
    assert set(want) <= {"good", "bad"}
    bodies = {
        "text/csv": csv_body([[review] for review in REVIEWS]),
        "application/json": json.dumps(REVIEWS).encode(),  # a flat list: a row per item
        "application/jsonlines": "".join(json.dumps(review) + "\n" for review in REVIEWS).encode(),
    }
    assert b'"great kettle, boils fast and looks nice"' in bodies["text/csv"]
    for content_type, body in bodies.items():
        response = server.invoke(body, content_type, Accept="application/json")
        assert response.status_code == 200, (content_type, body, response.text)
        assert response.json()["predictions"] == want, content_type


def test_text_refuses_an_empty_line_naming_its_row(text):
    _, server, _ = text
    body = b"lovely lamp\nbroken chair\n\nsoft towels\n"
    response = server.invoke(body, "text/csv")
    assert response.status_code == 400, response.text
    assert response.text.startswith("row 3, column 1 (review) is missing"), response.text
    assert "Traceback" not in response.text


# -- scores: a predictor.py that answers a label and its score ------------------------------

@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    model, server, base = trained_and_served(tmp_path_factory, "scores", {"predictor.py": "predictor.py"})
    yield model, server, base
    server.stop()


def test_scores_answer_the_label_and_its_probability_in_every_content_type(scores):
    model, server, _ = scores
    rows = iris_rows()
    features = pd.DataFrame(rows, columns=list(IRIS_FEATURES)).to_numpy()
    labels = own_predict(model, features)
    best = np.asarray(model.predict_proba(features)).max(axis=1).tolist()
    assert len(set(best)) > 1, "every score is the same: the rows say nothing about the score"
    bodies = {
        "text/csv": csv_body(rows),
        "application/json": json.dumps(rows).encode(),
        "application/jsonlines": "".join(json.dumps(row) + "\n" for row in rows).encode(),
    }
    for content_type, body in bodies.items():
        for accept in ("application/json", "application/jsonlines", "text/csv"):
            response = server.invoke(body, content_type, Accept=accept)
            assert response.status_code == 200, (content_type, accept, response.text)
            if accept == "application/json":
                records = response.json()["predictions"]
            elif accept == "application/jsonlines":
                records = [json.loads(line) for line in response.text.splitlines()]
            else:
                lines = response.text.splitlines()
                assert all(line.count(",") == 1 for line in lines), response.text
                records = [{"label": label, "score": float(score)} for label, score in
                           (line.split(",") for line in lines)]
            assert len(records) == len(rows), (content_type, accept)
            assert all(set(record) == {"label", "score"} for record in records), records
            assert [str(record["label"]) for record in records] == labels, (content_type, accept)
            assert [record["score"] for record in records] == pytest.approx(best), (content_type, accept)


def test_scores_still_give_every_class_probability_when_asked(scores):
    model, server, _ = scores
    rows = iris_rows()[:3]
    response = server.invoke(csv_body(rows), "text/csv", Accept="application/json",
                             **{"X-Amzn-SageMaker-Custom-Attributes": "output=probabilities"})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [set(p) for p in predictions] == [set(map(str, model.classes_))] * len(rows)


# -- anomaly: an unsupervised IsolationForest answering a score per row, or its label ----------

READINGS = [[70.1, 0.3, 101.2], [69.5, 0.31, 101.4], [91.0, 1.05, 101.3], [71.2, 0.29, 100.9], [60.0, 0.9, 99.0]]


@pytest.fixture(scope="module")
def anomaly(tmp_path_factory):
    files = {"algorithm.py": "algorithm.py", "predictor.py": "predictor.py"}
    model, server, base = trained_and_served(tmp_path_factory, "anomaly", files, data=True)
    yield model, server, base
    server.stop()


def test_anomaly_trains_on_features_alone_and_reports_its_own_metrics(anomaly):
    model, _, base = anomaly
    training = pd.read_csv(EXAMPLES / "anomaly" / "data" / "training" / "readings.csv")
    assert list(training.columns) == ["temperature", "vibration", "pressure"]
    assert model.n_features_in_ == 3  # every column a feature
    description = json.loads((base / "model" / "model.json").read_text())
    assert description["feature_names"] == list(training.columns)
    assert description["task"] == "unsupervised" and description["target"] is None
    assert [c["name"] for c in description["input"]["columns"]] == list(training.columns)
    for channel in ("train", "validation"):
        assert set(description["metrics"][channel]) == {"anomaly_rate", "mean_score"}
    assert 0 < description["metrics"]["train"]["anomaly_rate"] < 0.05


def test_anomaly_answers_its_own_score_per_row_in_every_content_type(anomaly):
    model, server, _ = anomaly
    want = model.score_samples(np.array(READINGS)).tolist()
    assert min(want) == want[2] or min(want) == want[4]  # an odd reading scores lowest
    bodies = {
        "text/csv": csv_body(READINGS),
        "application/json": json.dumps(READINGS).encode(),
        "application/jsonlines": "".join(json.dumps(row) + "\n" for row in READINGS).encode(),
    }
    for content_type, body in bodies.items():
        response = server.invoke(body, content_type, Accept="application/json")
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["predictions"] == pytest.approx(want, rel=1e-12), content_type
    response = server.invoke(bodies["text/csv"], "text/csv", Accept="text/csv")
    assert [float(line) for line in response.text.splitlines()] == pytest.approx(want, rel=1e-12)


def test_anomaly_answers_its_own_label_when_the_request_asks(anomaly):
    model, server, _ = anomaly
    want = model.predict(np.array(READINGS)).tolist()
    assert set(want) == {-1, 1}
    response = server.invoke(csv_body(READINGS), "text/csv", Accept="application/jsonlines",
                             **{"X-Amzn-SageMaker-Custom-Attributes": "answer=label"})
    assert response.status_code == 200, response.text
    assert [json.loads(line) for line in response.text.splitlines()] == want


@pytest.mark.parametrize(("attributes", "message"), [
    ("answer=probability", "custom attribute answer=probability: use answer=score (the default) or answer=label"),
    ("output=probabilities", "this model (IsolationForest) cannot give probabilities"),
])
def test_anomaly_refuses_an_answer_it_cannot_give(anomaly, attributes, message):
    _, server, _ = anomaly
    response = server.invoke(csv_body(READINGS), "text/csv", **{"X-Amzn-SageMaker-Custom-Attributes": attributes})
    assert response.status_code == 400 and response.text.startswith(message), response.text
