"""Several targets (multi-output models): the first N columns by `label_size=N` (the channel's
ContentType or the hyperparameter), or the columns the hyperparameter `target` lists, split off
the same way in every channel; the task inferred over them; metrics averaged over the targets and
given per target; an estimator that takes one target refused as a UserError; several hosts
refused before any data is read. Trained in-process on fixture tables with a fixture catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, IsolationForest, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from sagemaker_byo import Algorithm, Param, UserError
from sagemaker_byo.training import evaluation, fitting, multihost
from sagemaker_byo.training import job as jobs

SEEN: dict[str, object] = {}  # what the last `fit` hook was given


def recording_fit(params, task, features, target):
    SEEN.update(task=task, features=features, target=target)
    return (DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor)(random_state=0).fit(
        features, target)


class OneTarget:
    """Not a scikit-learn estimator: a mean per column, refusing a 2-D target as scikit-learn does."""

    def fit(self, features, target):
        if np.ndim(target) != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {np.shape(target)} instead.")
        self.mean = float(np.mean(target))
        return self

    def predict(self, features):
        return np.full(len(features), self.mean)


CATALOGUE = {
    "tree": Algorithm({"max_depth": Param(int, None, low=1, nullable=True)},
                      build=lambda params, task, features: (
                          DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor)(
                          random_state=0, **params)),
    "forest": Algorithm({}, build=lambda params, task, features: RandomForestRegressor(n_estimators=8, random_state=0),
                        tasks=("regression",), grows="n_estimators"),
    "ridge": Algorithm({}, build=lambda params, task, features: Ridge(), tasks=("regression",)),
    "knn": Algorithm({}, build=lambda params, task, features: KNeighborsClassifier(3), tasks=("classification",)),
    "boosting": Algorithm({}, build=lambda params, task, features: HistGradientBoostingRegressor(max_iter=5),
                          tasks=("regression",)),
    "logistic": Algorithm({}, build=lambda params, task, features: LogisticRegression(), tasks=("classification",)),
    "recording": Algorithm({}, fit=recording_fit),
    "one_target": Algorithm({}, fit=lambda params, task, features, target: OneTarget().fit(features, target),
                            tasks=("regression",)),
}


def table(rows: int = 90, seed: int = 0) -> pd.DataFrame:
    """Two numeric targets, `price` and `volume`, between the features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).round(3)
    return pd.DataFrame({"x": x[:, 0], "price": (x @ [1.0, 2.0, 0.5]).round(3), "y": x[:, 1],
                         "volume": (x @ [-1.0, 0.3, 2.0] + 10).round(3), "z": x[:, 2]})


def labels_first(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["price", "volume", "x", "y", "z"]]


def make_job(tmp_path: Path, frame: pd.DataFrame, content_type: str = "text/csv", header: bool = True,
             validation: pd.DataFrame | None = None, resource_config: dict | None = None,
             **hyperparameters: str) -> jobs.Job:
    ml = tmp_path / "ml"
    config = {}
    for channel, rows in (("training", frame), ("validation", validation)):
        if rows is None:
            continue
        (ml / "input" / "data" / channel).mkdir(parents=True)
        rows.to_csv(ml / "input" / "data" / channel / "rows.csv", index=False, header=header)
        config[channel] = {"ContentType": content_type}
    paths = jobs.settings.paths({jobs.settings.BASE_DIR: str(ml)})
    return jobs.Job(paths=paths, hyperparameters={"header": str(header).lower(), **hyperparameters},
                    input_data_config=config, resource_config=resource_config or {})


def trained(job: jobs.Job) -> tuple[object, dict]:
    fitting.train(job, CATALOGUE)
    return joblib.load(job.paths.model / "model.joblib"), json.loads((job.paths.model / "model.json").read_text())


def refused(job: jobs.Job, catalogue: dict = CATALOGUE) -> str:
    with pytest.raises(UserError) as raised:
        fitting.train(job, catalogue)
    assert not list(job.paths.model.glob("model.*")), "a refused job leaves no model"
    return str(raised.value)


# -- saying there are several targets -------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "hyperparameters"), [
    ("text/csv;label_size=2", {}),
    ("text/csv", {"label_size": "2"}),
    ("text/csv; label_size=2", {"label_size": "2"}),
])
def test_label_size_2_makes_the_first_two_columns_of_headerless_data_the_targets(tmp_path, content_type,
                                                                                  hyperparameters):
    frame = labels_first(table())
    model, description = trained(make_job(tmp_path, frame, content_type, header=False, algorithm="tree",
                                          **hyperparameters))
    assert description["target"] == ["0", "1"]  # 0-based positions, as one headerless target is named
    assert description["feature_names"] == ["column_3", "column_4", "column_5"]
    assert description["task"] == "regression" and model.n_outputs_ == 2
    np.testing.assert_allclose(model.predict(frame[["x", "y", "z"]].to_numpy(dtype=np.float32)),
                               frame[["price", "volume"]].to_numpy(), atol=1e-9)
    assert [c["name"] for c in description["input"]["columns"]] == ["column_3", "column_4", "column_5"]


def test_label_size_2_with_a_header_takes_the_first_two_columns_by_their_names(tmp_path):
    _, description = trained(make_job(tmp_path, labels_first(table()), label_size="2", algorithm="tree"))
    assert description["target"] == ["price", "volume"] and description["feature_names"] == ["x", "y", "z"]


@pytest.mark.parametrize("target", ['["volume", "price"]', "['volume', 'price']", json.dumps('["volume", "price"]')])
def test_targets_named_as_a_list_are_taken_from_any_position_in_the_order_given(tmp_path, target):
    frame = table()
    model, description = trained(make_job(tmp_path, frame, target=target, algorithm="tree"))
    assert description["target"] == ["volume", "price"]
    assert description["feature_names"] == ["x", "y", "z"]
    assert description["hyperparameters"]["target"] == ["volume", "price"]
    predicted = model.predict(frame[["x", "y", "z"]].to_numpy(dtype=np.float32))
    np.testing.assert_allclose(predicted, frame[["volume", "price"]].to_numpy(), atol=1e-9)


def test_targets_listed_by_position_work_without_a_header(tmp_path):
    frame = table()  # x, price, y, volume, z
    _, description = trained(make_job(tmp_path, frame, header=False, target="[3, 1]", algorithm="tree"))
    assert description["target"] == ["3", "1"]
    assert description["feature_names"] == ["column_1", "column_3", "column_5"]


def test_a_list_of_one_target_is_the_one_target_job_of_old(tmp_path):
    frame = table()
    _, description = trained(make_job(tmp_path, frame, target='["price"]', algorithm="recording"))
    assert description["target"] == "price" and description["hyperparameters"]["target"] == "price"
    assert SEEN["target"].shape == (len(frame),)
    assert (tmp_path / "ml" / "output" / "data" / "evaluation.svg").exists()


def test_the_validation_channel_is_split_the_same_way(tmp_path, capsys):
    job = make_job(tmp_path, table(), validation=table(40, seed=1), target='["price", "volume"]', algorithm="ridge")
    _, description = trained(job)
    validation = description["metrics"]["validation"]
    assert validation["r2"] > 0.99 and set(validation) >= {"rmse_price", "rmse_volume"}
    assert "validation:rmse_volume=" in capsys.readouterr().out


@pytest.mark.parametrize(("content_type", "hyperparameters", "expected"), [
    ("text/csv", {"label_size": "3", "target": '["price", "volume"]'},
     "hyperparameter label_size=3 but the hyperparameter target names 2 columns ('price', 'volume'): they "
     "disagree; set label_size=2, or name 3 target column(s)"),
    ("text/csv;label_size=1", {"target": '["price", "volume"]'},
     "channel 'training' ContentType label_size=1 but the hyperparameter target names 2 columns"),
    ("text/csv", {"label_size": "2", "target": "price"},
     "hyperparameter label_size=2 (the first 2 columns are targets) but the hyperparameter target names one "
     "column, 'price': they disagree; name all 2 as a JSON list"),
    ("text/csv;label_size=2", {"label_size": "3"},
     "channel 'training' ContentType label_size=2 but hyperparameter label_size=3: they disagree"),
])
def test_label_size_and_target_disagreeing_is_a_user_error_naming_the_fix(tmp_path, content_type,
                                                                          hyperparameters, expected):
    message = refused(make_job(tmp_path, table(), content_type, algorithm="tree", **hyperparameters))
    assert message.startswith(expected), message


@pytest.mark.parametrize(("frame", "hyperparameters", "expected"), [
    (table(), {"target": '["price", "cost"]'},
     "target column 'cost' is not in channel 'training'; its columns are 'x', 'price', 'y', 'volume', 'z'"),
    (table(), {"target": '["price", "price"]'}, "the targets name the column 'price' twice"),
    (table()[["price", "volume"]], {"label_size": "2"},
     "channel 'training' has 2 columns and 2 of them are targets, which leaves no feature"),
    (table(), {"label_size": "6"}, "target column index 5 is outside channel 'training' with 5 columns"),
    (table(), {"target": "[price, volume]"}, "hyperparameter 'target' must be a column"),
    (table(), {"target": "[]"}, "hyperparameter 'target' as a list must name one or more columns"),
    (table(), {"target": '[["price"], "volume"]'}, "hyperparameter 'target' as a list must name one or more"),
])
def test_targets_that_do_not_fit_the_data_are_a_user_error_naming_them(tmp_path, frame, hyperparameters, expected):
    assert refused(make_job(tmp_path, frame, algorithm="tree", **hyperparameters)).startswith(expected)


def test_label_size_larger_than_the_columns_is_a_user_error(tmp_path):
    message = refused(make_job(tmp_path, table(), "text/csv;label_size=9", header=False, algorithm="tree"))
    assert message.startswith("target column index 5 is outside channel 'training' with 5 columns"), message


def test_target_names_without_a_header_are_a_user_error_naming_header(tmp_path):
    message = refused(make_job(tmp_path, table(), header=False, target='["price", "volume"]', algorithm="tree"))
    assert message.startswith("target 'price' is a column name, which needs header=true"), message


def test_a_missing_value_in_any_target_names_its_row_and_column(tmp_path):
    frame = table()
    frame.loc[4, "volume"] = np.nan
    message = refused(make_job(tmp_path, frame, target='["price", "volume"]', algorithm="tree"))
    assert message.endswith("rows.csv, data row 5 has no value in the target column ('volume')"), message


# -- fitting and the task -------------------------------------------------------------------------


def test_the_fit_hook_gets_a_2d_target_in_the_order_of_the_targets(tmp_path):
    frame = table()
    trained(make_job(tmp_path, frame, target='["volume", "price"]', algorithm="recording"))
    assert SEEN["task"] == "regression"
    assert isinstance(SEEN["target"], np.ndarray) and SEEN["target"].dtype == np.float64
    np.testing.assert_array_equal(SEEN["target"], frame[["volume", "price"]].to_numpy())
    assert list(SEEN["features"].columns) == ["x", "y", "z"]


def test_one_target_still_reaches_the_fit_hook_as_a_1d_array(tmp_path):
    frame = table()
    trained(make_job(tmp_path, frame, target="price", algorithm="recording"))
    assert SEEN["target"].shape == (len(frame),)


def classes_table(rows: int = 90) -> pd.DataFrame:
    frame = table(rows)
    frame["price"] = np.where(frame.price > 0, "up", "down")
    frame["volume"] = (frame.volume > 10).astype(int)
    return frame


def test_text_and_integer_targets_train_a_multi_output_classifier(tmp_path, capsys):
    frame = classes_table()
    model, description = trained(make_job(tmp_path, frame, target='["price", "volume"]', algorithm="tree"))
    assert description["task"] == "classification"
    # scikit-learn sorts a multi-output target's classes together: text and numbers become text
    assert description["classes"] == [["down", "up"], ["0", "1"]]
    predicted = model.predict(frame[["x", "y", "z"]].to_numpy(dtype=np.float32))
    assert predicted.shape == (len(frame), 2) and set(predicted[:, 0]) == {"down", "up"}
    metrics = description["metrics"]["train"]
    assert metrics["accuracy"] == pytest.approx((metrics["accuracy_price"] + metrics["accuracy_volume"]) / 2)
    assert metrics["subset_accuracy"] <= min(metrics["accuracy_price"], metrics["accuracy_volume"])
    assert "train:subset_accuracy=1.000000;" in capsys.readouterr().out


def test_integer_targets_train_a_classifier_with_integer_classes(tmp_path):
    frame = classes_table()
    frame["price"] = (frame.price == "up").astype(int) * 2
    model, description = trained(make_job(tmp_path, frame, target='["price", "volume"]', algorithm="knn"))
    assert description["classes"] == [[0, 2], [0, 1]]
    assert model.predict(frame[["x", "y", "z"]].to_numpy(dtype=np.float32)).dtype.kind == "i"


def test_targets_of_different_kinds_are_a_user_error_naming_the_task_to_set(tmp_path):
    frame = table()
    frame["volume"] = (frame.volume > 10).astype(int)
    message = refused(make_job(tmp_path, frame, target='["price", "volume"]', algorithm="tree"))
    assert message.startswith("the targets look like different tasks ('price' regression; 'volume' "
                              "classification)"), message
    assert "set the hyperparameter task=regression" in message


def test_task_regression_over_integer_targets_is_taken_as_given(tmp_path):
    frame = table()
    frame["volume"] = (frame.volume > 10).astype(int)
    _, description = trained(make_job(tmp_path, frame, target='["price", "volume"]', task="regression",
                                      algorithm="tree"))
    assert description["task"] == "regression"


def test_a_target_with_one_class_is_named(tmp_path):
    frame = classes_table()
    frame["volume"] = 1
    message = refused(make_job(tmp_path, frame, target='["price", "volume"]', task="classification",
                               algorithm="tree"))
    assert message.startswith("the target column 'volume' holds one class only"), message


@pytest.mark.parametrize(("algorithm", "frame", "estimator"), [
    ("boosting", table(), " (HistGradientBoostingRegressor)"),
    ("logistic", classes_table(), " (LogisticRegression)"),
    ("one_target", table(), ""),  # a fit hook's own model: no estimator to name
])
def test_an_algorithm_that_takes_one_target_is_a_user_error_naming_it(tmp_path, algorithm, frame, estimator):
    message = refused(make_job(tmp_path, frame, target='["price", "volume"]', algorithm=algorithm))
    assert message.startswith(f"algorithm '{algorithm}'{estimator} takes one target, and this job has 2 "
                              f"('price', 'volume'); train one model per target"), message


def test_a_forest_grows_on_several_targets_with_checkpoints(tmp_path):
    job = make_job(tmp_path, table(), target='["price", "volume"]', algorithm="forest", checkpoint_steps="2")
    (tmp_path / "ml" / "checkpoints").mkdir()
    model, description = trained(job)
    assert model.n_outputs_ == 2 and len(model.estimators_) == 8
    assert len(list((tmp_path / "ml" / "checkpoints").iterdir())) >= 1


# -- metrics --------------------------------------------------------------------------------------


def test_regression_metrics_are_uniform_means_of_each_targets(tmp_path, capsys):
    frame = table()
    model, description = trained(make_job(tmp_path, frame, target='["price", "volume"]', algorithm="tree",
                                          max_depth="2"))
    metrics = description["metrics"]["train"]
    predicted = model.predict(frame[["x", "y", "z"]].to_numpy(dtype=np.float32))
    for position, name in enumerate(["price", "volume"]):
        error = predicted[:, position] - frame[name].to_numpy()
        assert metrics[f"rmse_{name}"] == pytest.approx(np.sqrt(np.mean(error ** 2)))
        assert metrics[f"mae_{name}"] == pytest.approx(np.mean(np.abs(error)))
    for metric in ("rmse", "mae", "r2"):
        assert metrics[metric] == pytest.approx((metrics[f"{metric}_price"] + metrics[f"{metric}_volume"]) / 2)
    out = capsys.readouterr().out
    assert f"train:rmse={metrics['rmse']:.6f};" in out and f"train:r2_volume={metrics['r2_volume']:.6f};" in out
    saved = json.loads((tmp_path / "ml" / "output" / "data" / "metrics.json").read_text())
    assert saved == description["metrics"]
    assert not (tmp_path / "ml" / "output" / "data" / "evaluation.svg").exists()  # it draws one target


class Fixed:
    def __init__(self, answers) -> None:
        self.answers = np.asarray(answers)

    def predict(self, features):
        return self.answers


def test_classification_metrics_of_several_targets_count_each_and_every_row():
    target = np.array([["a", 1], ["b", 0], ["a", 0], ["b", 1]], dtype=object)
    predicted = np.array([["a", 1], ["b", 1], ["b", 0], ["b", 1]], dtype=object)
    scores = evaluation.scores("classification", Fixed(predicted), None, target, ["kind", "on"])
    assert scores["accuracy_kind"] == 0.75 and scores["accuracy_on"] == 0.75 and scores["accuracy"] == 0.75
    assert scores["subset_accuracy"] == 0.5
    assert set(scores) == {"accuracy", "f1_macro", "subset_accuracy", "accuracy_kind", "accuracy_on",
                           "f1_macro_kind", "f1_macro_on"}


@pytest.mark.parametrize(("names", "suffixes"), [
    (["price (usd)", "volume"], ["price_usd_", "volume"]),
    (["a b", "a-b"], ["a_b", "a-b"]),
    (["a b", "a;b"], ["0", "1"]),  # the same once cleaned: their positions
    ([0, 1], ["0", "1"]),
])
def test_per_target_metric_names_keep_only_what_a_metric_regex_takes(names, suffixes):
    scores = evaluation.scores("regression", Fixed([[1.0, 2.0], [2.0, 3.0]]), None,
                               np.array([[1.0, 2.0], [2.0, 4.0]]), names)
    assert [key.removeprefix("rmse_") for key in scores if key.startswith("rmse_")] == suffixes


# -- several hosts --------------------------------------------------------------------------------

TWO_HOSTS = {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}


@pytest.mark.parametrize(("content_type", "hyperparameters", "said"), [
    ("text/csv;label_size=2", {}, "channel 'training' ContentType label_size=2"),
    ("text/csv", {"target": '["price", "volume"]'}, 'hyperparameter target=["price", "volume"]'),
])
def test_several_targets_on_several_hosts_are_refused_before_any_data_is_read(tmp_path, content_type,
                                                                              hyperparameters, said):
    job = make_job(tmp_path, table(), content_type, algorithm="forest", resource_config=TWO_HOSTS,
                   **hyperparameters)
    for path in job.channel("training").iterdir():
        path.unlink()  # reading would fail: the refusal comes first
    with pytest.raises(UserError) as raised:
        multihost.train(job, {**CATALOGUE, "forest": Algorithm(
            {}, build=lambda *args: RandomForestRegressor(), distributed="joblib")})
    assert str(raised.value) == (f"several targets ({said}) train on one host, and this job has 2 (algo-1, "
                                 f"algo-2); set instance_count=1")


def test_an_unsupervised_algorithm_leaves_every_target_column_out(tmp_path):
    catalogue = {"outliers": Algorithm({}, build=lambda params, task, features: IsolationForest(n_estimators=5),
                                       tasks=("unsupervised",))}
    job = make_job(tmp_path, labels_first(table()), "text/csv;label_size=2", header=False, algorithm="outliers")
    fitting.train(job, catalogue)
    description = json.loads((job.paths.model / "model.json").read_text())
    assert description["feature_names"] == ["column_3", "column_4", "column_5"] and description["target"] is None
