"""The bundled algorithm's own tests, run through the real `algo/train`: a fork edits these.

Its numbers on the bundled iris job, and every bundled algorithm for both tasks on a table with
a text column and missing values. The jobs run concurrently once per module.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from support import ALGO, SAMPLE_JOB, copy_test_dir, run_train

ALGORITHMS = ("decision_tree", "random_forest", "extra_trees", "gradient_boosting", "lightgbm", "linear")
ESTIMATORS = {
    "decision_tree": ("DecisionTreeClassifier", "DecisionTreeRegressor"),
    "random_forest": ("RandomForestClassifier", "RandomForestRegressor"),
    "extra_trees": ("ExtraTreesClassifier", "ExtraTreesRegressor"),
    "gradient_boosting": ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    "lightgbm": ("LGBMClassifier", "LGBMRegressor"),
    "linear": ("LogisticRegression", "Ridge"),
}
TASKS = ("classification", "regression")
TARGETS = {"classification": "label", "regression": "price"}
METRIC = re.compile(r"(\w+):(\w+)=(-?[0-9.]+);")


def table(task: str, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    size, weight = rng.normal(size=rows).round(3), rng.uniform(0, 10, rows).round(3)
    color = rng.choice(["red", "green", "blue"], rows).astype(object)
    score = size + weight / 5 + 1.5 * (color == "red")
    target = (np.where(score < 1.2, "low", np.where(score < 2.5, "mid", "high")) if task == "classification"
              else (10 * score).round(4) + 0.0001)
    frame = pd.DataFrame({TARGETS[task]: target, "size": size, "color": color, "weight": weight})
    frame.loc[3, "size"], frame.loc[5, "color"], frame.loc[7, "weight"] = np.nan, None, np.nan
    return frame


def tabular_job(frame: pd.DataFrame, **hyperparameters: str):
    def arrange(ml: Path) -> None:
        data = ml / "input" / "data"
        shutil.rmtree(data)
        (data / "training").mkdir(parents=True)
        frame.to_csv(data / "training" / "data.csv", index=False)
        (ml / "input" / "config" / "inputdataconfig.json").write_text(json.dumps({"training": {}}))
        (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"header": "true", **hyperparameters}))
    return arrange


def hyperparameters(values: dict):
    return lambda ml: (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(values))


def gzipped(ml: Path) -> None:
    path = ml / "input" / "data" / "training" / "iris.csv"
    path.with_suffix(".csv.gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()


JOBS = {
    "bundled": lambda ml: None,
    "gzipped": gzipped,
    "SDK JSON-encoded": hyperparameters({"max_depth": '"3"', "criterion": '"entropy"'}),
    "other task's criterion": tabular_job(table("regression"), algorithm="random_forest", target="price",
                                          criterion="gini"),
    **{f"{name} {task}": tabular_job(table(task), algorithm=name, target=TARGETS[task])
       for name in ALGORITHMS for task in TASKS},
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("iris")

    def run(item):
        index, (name, arrange) = item
        ml = copy_test_dir(root / f"job{index}" / "ml", SAMPLE_JOB)
        arrange(ml)
        return name, (ml, run_train(ml, timeout=300, algo=ALGO))

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        return dict(pool.map(run, enumerate(JOBS.items())))


def succeeded(outcomes, name: str):
    ml, result = outcomes[name]
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = {}
    for match in map(METRIC.fullmatch, result.stdout.splitlines()):
        if match:
            metrics.setdefault(match.group(1), {})[match.group(2)] = float(match.group(3))
    return ml, metrics, json.loads((ml / "model" / "model.json").read_text())


def test_the_bundled_job_scores_its_known_accuracy(outcomes):
    _, metrics, _ = succeeded(outcomes, "bundled")
    assert metrics["train"]["accuracy"] == pytest.approx(0.983333, abs=1e-6)
    assert 0.8 <= metrics["validation"]["accuracy"] <= 1.0


def test_the_bundled_job_is_a_five_leaf_decision_tree_predicting_iris_classes(outcomes):
    ml, _, description = succeeded(outcomes, "bundled")
    assert (description["algorithm"], description["estimator"]) == ("decision_tree", "DecisionTreeClassifier")
    assert description["hyperparameters"]["max_leaf_nodes"] == 5
    assert description["hyperparameters"]["criterion"] == "gini"
    assert description["hyperparameters"]["min_samples_split"] == 2  # defaults filled in
    model = joblib.load(ml / "model" / "model.joblib")
    assert model.get_n_leaves() == 5
    assert list(model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))) == ["setosa", "virginica"]
    assert description["input"]["frame"] is False  # a bare tree on numbers: the server's array path
    assert all(c["accepts_missing"] for c in description["input"]["columns"])


def test_a_gzipped_channel_trains_the_same_tree(outcomes):
    assert succeeded(outcomes, "gzipped")[1] == succeeded(outcomes, "bundled")[1]


def test_tree_hyperparameters_from_the_python_sdk_are_decoded(outcomes):
    hyperparameters = succeeded(outcomes, "SDK JSON-encoded")[2]["hyperparameters"]
    assert (hyperparameters["max_depth"], hyperparameters["criterion"]) == (3, "entropy")


def test_a_criterion_of_the_other_task_is_a_user_error_naming_the_algorithm(outcomes):
    ml, result = outcomes["other task's criterion"]
    assert result.returncode == 1
    reason = (ml / "output" / "failure").read_text()
    assert reason.startswith("UserError: algorithm 'random_forest' (regression) refused a hyperparameter")
    assert "'criterion'" in reason and "'squared_error'" in reason and "'gini'" in reason


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", ALGORITHMS)
def test_every_algorithm_trains_for_both_tasks_with_text_and_missing_values(outcomes, name, task):
    _, metrics, description = succeeded(outcomes, f"{name} {task}")
    assert description["estimator"] == ESTIMATORS[name][TASKS.index(task)]
    assert description["task"] == task
    assert description["categorical_features"] == ["color"]
    columns = {c["name"]: c for c in description["input"]["columns"]}
    assert columns["color"]["text"] and all(c["accepts_missing"] for c in columns.values())  # encoded, imputed
    assert description["input"]["frame"] is True
    if task == "classification":
        assert metrics["train"]["accuracy"] >= 0.7
    else:
        assert metrics["train"]["r2"] >= 0.5
    assert "random_state" in description["hyperparameters"]
    assert ("class_weight" in description["hyperparameters"]) is (task == "classification")


def test_the_bundled_data_is_iris():
    assert len((SAMPLE_JOB / "input" / "data" / "training" / "iris.csv").read_text().splitlines()) == 120
