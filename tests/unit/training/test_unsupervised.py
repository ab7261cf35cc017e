"""Algorithms that learn from features alone (anomaly detection, clustering, embeddings), and data
without a target column (`text/csv;label_size=0`, or the hyperparameter label_size=0): trained
in-process on fixture tables, with a fixture catalogue of unsupervised and supervised models."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sagemaker_byo import Algorithm, Param, UserError
from sagemaker_byo.errors import AlgorithmError
from sagemaker_byo.training import fitting
from sagemaker_byo.training import job as jobs
from sagemaker_byo.training.hyperparameters import Param as _Param  # the public name is the same class

assert Param is _Param


class Centre:
    """Not a scikit-learn estimator: the training rows' mean, and each row's distance to it."""

    def __init__(self, centre: np.ndarray) -> None:
        self.centre = centre

    def predict(self, features) -> np.ndarray:
        return np.linalg.norm(np.asarray(features, dtype=float) - self.centre, axis=1)


def inertia(model, features, target):
    return {"inertia": model[-1].inertia_, "clusters": len(model[-1].cluster_centers_)}


CATALOGUE = {
    "outliers": Algorithm(
        {"n_estimators": Param(int, 50, low=1), "random_state": Param(int, 0)},
        build=lambda params, task, features: IsolationForest(**params),
        tasks=("unsupervised",),
        metrics=lambda model, features, target: {"mean_score": float(np.mean(model.score_samples(features)))},
    ),
    "clusters": Algorithm(
        {"k": Param(int, 3, low=1)},
        build=lambda params, task, features: make_pipeline(StandardScaler(), KMeans(params["k"], n_init=2,
                                                                                    random_state=0)),
        tasks=("unsupervised",), metrics=inertia,
    ),
    "centre": Algorithm(
        {}, fit=lambda params, task, features, target: Centre(features.to_numpy(dtype=float).mean(axis=0)),
        tasks=("unsupervised",),
    ),
    "logistic": Algorithm(
        {}, build=lambda params, task, features: LogisticRegression(), tasks=("classification",)),
}


def features(rows: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows).round(3), "y": rng.normal(size=rows).round(3),
                         "z": rng.uniform(size=rows).round(3)})


def make_job(tmp_path: Path, frame: pd.DataFrame, content_type: str = "text/csv", header: bool = True,
             validation: pd.DataFrame | None = None, **hyperparameters: str) -> jobs.Job:
    ml = tmp_path / "ml"
    config = {}
    for channel, table in (("training", frame), ("validation", validation)):
        if table is None:
            continue
        (ml / "input" / "data" / channel).mkdir(parents=True)
        table.to_csv(ml / "input" / "data" / channel / "rows.csv", index=False, header=header)
        config[channel] = {"ContentType": content_type}
    paths = jobs.settings.paths({jobs.settings.BASE_DIR: str(ml)})
    return jobs.Job(paths=paths, hyperparameters={"header": str(header).lower(), **hyperparameters},
                    input_data_config=config, resource_config={})


def trained(job: jobs.Job) -> tuple[object, dict]:
    fitting.train(job, CATALOGUE)
    return joblib.load(job.paths.model / "model.joblib"), json.loads((job.paths.model / "model.json").read_text())


def test_an_unsupervised_algorithm_trains_on_every_column(tmp_path, capsys):
    frame = features()
    model, description = trained(make_job(tmp_path, frame, algorithm="outliers"))
    assert isinstance(model, IsolationForest) and model.n_features_in_ == 3
    assert description["task"] == "unsupervised" and description["target"] is None
    assert description["feature_names"] == ["x", "y", "z"] and description["classes"] is None
    assert [c["name"] for c in description["input"]["columns"]] == ["x", "y", "z"]
    np.testing.assert_allclose(model.score_samples(frame.to_numpy(dtype=np.float32)).mean(),
                               description["metrics"]["train"]["mean_score"], rtol=1e-6)
    assert "train:mean_score=" in capsys.readouterr().out


@pytest.mark.parametrize("content_type", ["text/csv;label_size=0", "text/csv; label_size=0"])
def test_features_only_data_declared_by_content_type_trains_an_unsupervised_model(tmp_path, content_type):
    model, description = trained(make_job(tmp_path, features(), content_type, header=False, algorithm="outliers"))
    assert model.n_features_in_ == 3
    assert description["feature_names"] == ["column_1", "column_2", "column_3"]


def test_a_model_built_by_fit_gets_no_target(tmp_path):
    frame = features()
    model, description = trained(make_job(tmp_path, frame, algorithm="centre"))
    np.testing.assert_allclose(model.centre, frame.to_numpy().mean(axis=0), rtol=1e-5)
    assert description["metrics"] == {"train": {}}  # the algorithm supplies none: none are made up
    assert not (tmp_path / "ml" / "output" / "data" / "evaluation.svg").exists()


def test_the_algorithms_own_metrics_are_reported_for_each_channel(tmp_path, capsys):
    job = make_job(tmp_path, features(), validation=features(30, seed=1), algorithm="clusters", k="4")
    model, description = trained(job)
    assert set(description["metrics"]) == {"train", "validation"}
    assert description["metrics"]["train"]["clusters"] == 4.0
    out = capsys.readouterr().out
    assert "train:inertia=" in out and "validation:clusters=4.000000;" in out
    saved = json.loads((tmp_path / "ml" / "output" / "data" / "metrics.json").read_text())
    assert saved == description["metrics"]


def test_a_target_column_named_for_an_unsupervised_algorithm_is_left_out(tmp_path):
    frame = features()
    frame.insert(0, "label", np.where(frame.x > 1, "odd", "usual"))
    model, description = trained(make_job(tmp_path, frame, algorithm="outliers", target="label"))
    assert model.n_features_in_ == 3 and description["feature_names"] == ["x", "y", "z"]


def test_label_size_1_with_an_unsupervised_algorithm_leaves_the_first_column_out(tmp_path):
    frame = features()
    model, description = trained(make_job(tmp_path, frame, "text/csv; label_size=1", header=False,
                                          algorithm="outliers"))
    assert description["feature_names"] == ["column_2", "column_3"]


@pytest.mark.parametrize(("content_type", "hyperparameters"), [
    ("text/csv;label_size=0", {}),
    ("text/csv", {"label_size": "0"}),
])
def test_features_only_data_given_to_a_supervised_algorithm_is_a_user_error_naming_the_fix(
        tmp_path, content_type, hyperparameters):
    job = make_job(tmp_path, features(), content_type, algorithm="logistic", **hyperparameters)
    with pytest.raises(UserError) as raised:
        fitting.train(job, CATALOGUE)
    message = str(raised.value)
    assert message.startswith("the data is features only (")
    assert "algorithm 'logistic' learns a target (classification)" in message
    assert "label_size=1" in message and 'tasks=("unsupervised",)' in message
    assert not (tmp_path / "ml" / "model" / "model.joblib").exists()


def test_task_unsupervised_with_a_supervised_algorithm_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="algorithm 'logistic' has no unsupervised variant; it supports: "
                                        "classification"):
        fitting.train(make_job(tmp_path, features(), algorithm="logistic", task="unsupervised"), CATALOGUE)


def test_a_supervised_task_for_an_unsupervised_algorithm_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="algorithm 'outliers' has no regression variant; it supports: unsupervised"):
        fitting.train(make_job(tmp_path, features(), algorithm="outliers", task="regression"), CATALOGUE)


def test_the_hyperparameter_and_the_content_type_disagreeing_is_a_user_error(tmp_path):
    job = make_job(tmp_path, features(), "text/csv;label_size=0", algorithm="outliers", label_size="1")
    with pytest.raises(UserError, match=r"channel 'training' ContentType label_size=0 but hyperparameter "
                                        r"label_size=1: they disagree"):
        fitting.train(job, CATALOGUE)


@pytest.mark.parametrize("figures", [["inertia"], {"inertia": "low"}, {1: 2.0}])
def test_metrics_that_are_not_names_and_numbers_are_an_algorithm_error(tmp_path, figures):
    catalogue = {"bad": Algorithm({}, build=lambda params, task, frame: IsolationForest(n_estimators=5),
                                  tasks=("unsupervised",), metrics=lambda *args: figures)}
    with pytest.raises(AlgorithmError, match="algorithm 'bad': metrics"):
        fitting.train(make_job(tmp_path, features()), catalogue)


def test_a_supervised_algorithm_may_add_metrics_to_the_plumbings(tmp_path):
    frame = features()
    frame.insert(0, "label", np.where(frame.x > 0, "a", "b"))
    catalogue = {"logistic": Algorithm({}, build=lambda params, task, table: LogisticRegression(),
                                       tasks=("classification",),
                                       metrics=lambda model, rows, target: {"rows": len(target)})}
    fitting.train(make_job(tmp_path, frame), catalogue)
    metrics = json.loads((tmp_path / "ml" / "model" / "model.json").read_text())["metrics"]["train"]
    assert metrics["rows"] == 80.0 and "accuracy" in metrics


def test_a_headerless_target_with_one_class_is_named_as_the_user_wrote_it(tmp_path):
    frame = features()
    frame.insert(0, "label", 1)
    job = make_job(tmp_path, frame, header=False, task="classification", algorithm="logistic")
    with pytest.raises(UserError) as raised:
        fitting.train(job, CATALOGUE)
    assert str(raised.value).startswith("the target column 0 holds one class only"), raised.value
