"""The training plumbing (sagemaker_byo.training.fitting and .algorithms) around a catalogue of its own:
hyperparameters, the task, what a model is fitted on, refusals named for the algorithm, and
model.json's input contract. Nothing here depends on the bundled algorithm.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

import forks
from sagemaker_byo import resources, settings
from sagemaker_byo.errors import AlgorithmError, UserError
from sagemaker_byo.training import fitting, plan
from sagemaker_byo.training import job as jobs
from sagemaker_byo.training.algorithms import Algorithm, tabular, text_columns
from sagemaker_byo.training.hyperparameters import Param
from support import ALGO

CATALOGUE = forks.load().ALGORITHMS
KNN = CATALOGUE["knn"]


# --- jobs in a temporary /opt/ml, trained in-process ------------------------------------------

def numbers(rows: int = 60, seed: int = 0, missing: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows).round(3), "b": rng.normal(size=rows).round(3)})
    frame.insert(0, "label", np.where(frame.a + frame.b > 0, "yes", "no"))
    if missing:
        frame.loc[2, "a"] = np.nan
    return frame


def reviews(rows: int = 60) -> pd.DataFrame:
    good = ["great fun", "lovely and warm", "great story"]
    bad = ["dull and slow", "awful plot", "slow story"]
    texts = [(good if i % 2 else bad)[i % 3] for i in range(rows)]
    return pd.DataFrame({"label": ["good" if i % 2 else "bad" for i in range(rows)], "review": texts,
                         "stars": [float(i % 5) for i in range(rows)]})


def quantities(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"price": rng.uniform(0, 100, rows).round(2) + 0.001, "size": rng.normal(size=rows)})


def make_job(tmp_path: Path, frame: pd.DataFrame, **hyperparameters: str) -> jobs.Job:
    ml = tmp_path / "ml"
    (ml / "input" / "data" / "training").mkdir(parents=True)
    frame.to_csv(ml / "input" / "data" / "training" / "data.csv", index=False)
    paths = settings.paths({settings.BASE_DIR: str(ml)})
    return jobs.Job(paths=paths, hyperparameters={"header": "true", **hyperparameters},
                        input_data_config={"training": {"ContentType": "text/csv"}}, resource_config={})


def trained(job: jobs.Job, catalogue=CATALOGUE) -> tuple[object, dict]:
    fitting.train(job, catalogue)
    return joblib.load(job.paths.model / "model.joblib"), json.loads((job.paths.model / "model.json").read_text())


def test_algo_train_is_executable():
    """SageMaker runs `train` from PATH: without the executable bit the job cannot start."""
    assert os.access(ALGO / "train", os.X_OK)


# --- the Algorithm contract --------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "message"), [
    ({}, "exactly one of build= and fit="),
    ({"build": lambda *a: None, "fit": lambda *a: None}, "exactly one of build= and fit="),
    ({"fit": lambda *a: None, "grows": "n_estimators"}, "grows= needs build="),
    ({"build": lambda *a: None, "tasks": ("clustering",)}, "tasks must be some of"),
])
def test_an_algorithm_takes_build_or_fit_and_known_tasks(fields, message):
    with pytest.raises(TypeError, match=message):
        Algorithm({}, **fields)


@pytest.mark.parametrize("catalogue", [{}, {"knn": "not an Algorithm"},
                                       {"x": Algorithm({"task": Param(str)}, build=lambda *a: None)}])
def test_a_broken_catalogue_is_an_algorithm_error(catalogue):
    with pytest.raises(AlgorithmError):
        plan.check_catalogue(catalogue)


# --- hyperparameters -------------------------------------------------------------------------

def test_the_algorithm_defaults_to_the_catalogues_first_and_its_choices_are_the_catalogues_names():
    schema = plan.common(CATALOGUE)
    assert schema["algorithm"].default == next(iter(CATALOGUE))
    assert schema["algorithm"].choices == tuple(CATALOGUE)
    assert plan.parse_hyperparameters({}, CATALOGUE)["algorithm"] == next(iter(CATALOGUE))


def test_an_algorithms_own_hyperparameters_are_parsed_with_the_common_ones():
    parsed = plan.parse_hyperparameters({"algorithm": "knn", "n_neighbors": '"3"', "checkpoint_steps": "4"},
                                        CATALOGUE)
    assert parsed == {"algorithm": "knn", "task": None, "header": False, "target": None, "label_size": None,
                      "checkpoint_steps": 4, "instance_group": None, "n_neighbors": 3}


def test_a_hyperparameter_the_algorithm_lacks_is_a_user_error_listing_the_allowed_names():
    with pytest.raises(UserError) as raised:
        plan.parse_hyperparameters({"algorithm": "knn", "random_state": "0"}, CATALOGUE)
    assert str(raised.value) == ("unknown hyperparameter 'random_state' for algorithm 'knn'; allowed: algorithm, "
                                 "checkpoint_steps, header, instance_group, label_size, n_neighbors, target, task")


def test_an_unknown_algorithm_is_refused_with_the_catalogues_names():
    with pytest.raises(UserError, match="hyperparameter 'algorithm' must be one of 'knn', 'words', 'quantile'"):
        plan.parse_hyperparameters({"algorithm": "svm"}, CATALOGUE)


def own(name: str, task: str, **raw: str) -> dict:
    params = plan.parse_hyperparameters({"algorithm": name, **raw}, CATALOGUE)
    return fitting.for_task(name, CATALOGUE[name], params, {"algorithm": name, **raw}, task)


def test_build_gets_the_algorithms_own_parameters_for_the_task_without_nulls():
    assert own("forest", "classification", class_weight="balanced") == {
        "n_estimators": 20, "class_weight": "balanced", "random_state": 0}
    assert own("forest", "regression", random_state="null") == {"n_estimators": 20}


def test_a_parameter_of_the_other_task_is_dropped_when_not_set():
    assert "class_weight" not in own("forest", "regression")
    assert "class_weight" not in own("forest", "regression", class_weight="null")


def test_a_parameter_of_the_other_task_set_by_the_job_is_a_user_error_naming_the_algorithm():
    with pytest.raises(UserError) as raised:
        own("forest", "regression", class_weight='"balanced"')
    assert str(raised.value) == ("hyperparameter 'class_weight' of algorithm 'forest' applies to classification "
                                 "only, and this job's task is regression")


# --- the task ----------------------------------------------------------------------------------

def test_a_task_the_algorithm_lacks_is_a_user_error():
    with pytest.raises(UserError) as raised:
        fitting.check_task("knn", KNN, "regression")
    assert str(raised.value) == "algorithm 'knn' has no regression variant; it supports: classification"


def test_an_inferred_task_the_algorithm_lacks_says_so_and_suggests_setting_task(tmp_path):
    with pytest.raises(UserError) as raised:
        fitting.train(make_job(tmp_path, quantities(), algorithm="knn", target="price"), CATALOGUE)
    message = str(raised.value)
    assert message.startswith("algorithm 'knn' has no regression variant; it supports: classification")
    assert "inferred from the target column 'price'" in message and "task" in message.split(";")[1]


def test_an_explicit_task_the_algorithm_lacks_is_refused_before_reading_data(tmp_path):
    job = make_job(tmp_path, numbers(), algorithm="knn", task="regression")
    (job.paths.channel("training") / "data.csv").unlink()  # never read
    with pytest.raises(UserError, match="algorithm 'knn' has no regression variant"):
        fitting.train(job, CATALOGUE)


@pytest.mark.parametrize(("values", "task"), [
    (["a", "b", "a"], "classification"),  # strings
    (["1", "2", "x"], "classification"),
    ([0, 1, 1, 0], "classification"),  # small integers
    ([1.0, 2.0, 3.0], "classification"),  # whole numbers read as floats
    (list(range(20)), "classification"),  # up to MAX_CLASSES_INFERRED classes
    (list(range(21)), "regression"),  # more distinct integers: a quantity
    ([0.5, 1.25, 3.0], "regression"),  # floats
    (np.array([1.5, 2.0], dtype=np.float32), "regression"),
])
def test_the_task_is_inferred_from_the_target(values, task):
    assert fitting.MAX_CLASSES_INFERRED == 20
    assert fitting.infer_task(pd.Series(values)) == task


@pytest.mark.parametrize(("values", "task", "expected"), [
    ([1.0, 2.0], "classification", [1, 2]),  # whole floats become integer labels
    (["a", "b"], "classification", ["a", "b"]),
    ([1, 2], "regression", [1.0, 2.0]),
    (["1.5", "2"], "regression", [1.5, 2.0]),  # text of numbers is fine for regression
])
def test_prepare_target_gives_labels_or_numbers(values, task, expected):
    assert fitting.prepare_target(pd.Series(values), task).tolist() == expected


def test_a_regression_target_with_words_is_a_user_error():
    with pytest.raises(UserError, match="task 'regression' needs a numeric target, but data row 2 has 'big'"):
        fitting.prepare_target(pd.Series(["1.5", "big"]), "regression")


# --- what a model is fitted on -----------------------------------------------------------------

FEATURES = pd.DataFrame({"colour": ["red", "blue", None], "length": [1.0, np.nan, 3.0]})


@pytest.mark.parametrize(("algorithm", "frame", "array"), [
    (KNN, FEATURES[["length"]], True),  # numbers: a float32 array
    (KNN, FEATURES, False),  # a text column: the DataFrame
    (Algorithm({}, build=lambda *a: None, frame=True), FEATURES[["length"]], False),
    (CATALOGUE["quantile"], FEATURES[["length"]], False),  # `fit` gets the DataFrame
])
def test_a_model_is_fitted_on_an_array_of_numbers_unless_it_needs_the_frame(algorithm, frame, array):
    assert fitting.fits_on_array(frame, algorithm) is array


def test_text_columns_are_the_non_numeric_ones():
    assert text_columns(FEATURES) == ["colour"] and text_columns(FEATURES[["length"]]) == []


@pytest.mark.parametrize(("estimator", "frame", "scale", "steps"), [
    (DecisionTreeClassifier(), FEATURES[["length"]], False, None),  # takes NaN: the bare estimator
    (KNeighborsClassifier(1), FEATURES[["length"]].fillna(0), False, None),  # nothing to impute
    (KNeighborsClassifier(1), FEATURES[["length"]], False, ["SimpleImputer"]),
    (KNeighborsClassifier(1), FEATURES[["length"]].fillna(0), True, ["Pipeline"]),  # impute and scale
    (DecisionTreeClassifier(), FEATURES, False, ["ColumnTransformer"]),  # text is encoded
    (KNeighborsClassifier(1), FEATURES, True, ["ColumnTransformer"]),
])
def test_tabular_adds_only_the_preprocessing_the_estimator_needs(estimator, frame, scale, steps):
    model = tabular(frame, estimator, scale=scale)
    if steps is None:
        assert model is estimator
        return
    assert isinstance(model, Pipeline) and model[-1] is estimator
    assert [type(step).__name__ for _, step in model.steps[:-1]] == steps
    data = frame if text_columns(frame) else frame.to_numpy(dtype=np.float32)  # as the plumbing fits it
    matrix = model[:-1].fit_transform(data, [0, 1, 0][:len(frame)])
    matrix = np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=float)
    allow_nan = estimator.__sklearn_tags__().input_tags.allow_nan
    assert allow_nan or not np.isnan(matrix).any()
    assert model.fit(data, [0, 1, 0]).predict(data).shape == (len(frame),)


# --- whole jobs, in-process -----------------------------------------------------------------------

def test_a_knn_pipeline_is_fitted_on_an_array_and_its_contract_refuses_missing_values(tmp_path):
    model, description = trained(make_job(tmp_path, numbers(), algorithm="knn", n_neighbors="3"))
    assert isinstance(model, Pipeline) and model[-1].n_neighbors == 3
    assert getattr(model, "feature_names_in_", None) is None  # fitted on an array
    assert description["format_version"] == 2
    assert description["estimator"] == "KNeighborsClassifier"
    assert description["hyperparameters"]["n_neighbors"] == 3 and "random_state" not in description["hyperparameters"]
    assert "accepts_missing_values" not in description
    contract = description["input"]
    assert contract["frame"] is False and contract["measured"] is True
    assert [(c["name"], c["text"], c["accepts_missing"]) for c in contract["columns"]] == [
        ("a", False, False), ("b", False, False)]


def test_a_text_pipeline_is_fitted_on_the_frame_and_its_contract_records_the_text_column(tmp_path):
    model, description = trained(make_job(tmp_path, reviews(), algorithm="words"))
    assert list(model.predict(pd.DataFrame({"review": ["great fun"], "stars": [1.0]}))) == ["good"]
    assert description["categorical_features"] == ["review"]
    contract = description["input"]
    assert contract["frame"] is True
    assert {c["name"]: c["text"] for c in contract["columns"]} == {"review": True, "stars": False}
    assert description["metrics"]["train"]["accuracy"] == 1.0


def test_a_model_that_fits_itself_is_saved_and_evaluated(tmp_path):
    model, description = trained(make_job(tmp_path, quantities(), algorithm="quantile", q="0.5"))
    assert type(model).__name__ == "Quantile" and description["estimator"] == "Quantile"
    assert model.value == pytest.approx(float(np.median(quantities().price)))
    assert description["task"] == "regression" and description["classes"] is None
    assert set(description["metrics"]["train"]) == {"rmse", "mae", "r2"}


def test_a_growing_pipeline_with_a_checkpoint_folder_grows_its_last_step_only(tmp_path):
    frame = numbers(missing=True).assign(colour=["red", "blue", "green"] * 20)
    job = make_job(tmp_path, frame, algorithm="forest", n_estimators="6", checkpoint_steps="3")
    job.paths.checkpoints.mkdir()
    model, description = trained(job)
    assert isinstance(model, Pipeline) and len(model[-1].estimators_) == 6 and model[-1].warm_start is False
    assert len(list(job.paths.checkpoints.glob("checkpoint-*.joblib"))) == 2  # the newest two of three
    assert description["input"]["frame"] is True


def test_an_invalid_parameter_scikit_learn_refuses_at_fit_is_a_user_error_naming_the_algorithm(tmp_path):
    job = make_job(tmp_path, quantities(), algorithm="forest", criterion="gini", target="price")
    with pytest.raises(UserError) as raised:
        fitting.train(job, CATALOGUE)
    message = str(raised.value)
    assert message.startswith("algorithm 'forest' (regression) refused a hyperparameter: ")
    assert "'criterion'" in message and "'squared_error'" in message and "'gini'" in message


def test_a_parameter_the_estimator_does_not_take_is_a_user_error_naming_what_the_algorithm_takes(tmp_path):
    with pytest.raises(UserError) as raised:
        fitting.train(make_job(tmp_path, numbers(), algorithm="misspelt"), CATALOGUE)
    message = str(raised.value)
    assert message.startswith("algorithm 'misspelt' (classification) could not be built: ")
    assert "'depth'" in message and message.endswith("its hyperparameters for classification: depth")


def test_a_type_error_in_the_algorithms_own_code_stays_an_algorithm_bug(tmp_path):
    broken = {"broken": Algorithm({}, build=lambda params, task, features: len(None))}
    with pytest.raises(TypeError):
        fitting.train(make_job(tmp_path, numbers(), algorithm="broken"), broken)


def test_the_plumbing_never_adds_parameters_the_algorithm_did_not_declare(tmp_path):
    seen = []

    def build(params, task, features):
        seen.append(dict(params))
        return KNN.build({"n_neighbors": 1}, task, features)

    fitting.train(make_job(tmp_path, numbers(), algorithm="spy"), {"spy": Algorithm({"k": Param(int, 1)}, build=build)})
    assert seen == [{"k": 1}]


class FitSpy(RandomForestClassifier):
    """A forest that records the n_jobs it was fitted with."""

    fitted_with: list = []

    def fit(self, X, y, sample_weight=None):
        FitSpy.fitted_with.append(self.n_jobs)
        return super().fit(X, y, sample_weight)


def test_n_jobs_of_minus_one_fits_on_the_containers_cpus_and_is_saved_as_given(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(resources, "cpus", lambda env=None: resources.Figure(1, "a quota of 1 CPU"))
    monkeypatch.setattr(FitSpy, "fitted_with", [])
    catalogue = {"forest": Algorithm({}, build=lambda params, task, features: FitSpy(n_estimators=3, n_jobs=-1))}
    with caplog.at_level("INFO"):
        model, _ = trained(make_job(tmp_path, numbers(), algorithm="forest"), catalogue)
    assert FitSpy.fitted_with == [1]
    assert model.n_jobs == -1  # the server sizes it to its own share of the CPUs
    assert "CPUs: 1 (a quota of 1 CPU)" in caplog.text and "fitting with n_jobs=1" in caplog.text
