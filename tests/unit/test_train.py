"""algo/train's own logic: the hyperparameter schema per algorithm, the task read from the target,
and the estimator and preprocessing built from them."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sagemaker_byo.errors import UserError

TRAIN = Path(__file__).resolve().parents[2] / "algo" / "train"


def load_train():
    loader = importlib.machinery.SourceFileLoader("train_module", str(TRAIN))
    spec = importlib.util.spec_from_loader("train_module", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


train = load_train()
ALGORITHMS = sorted(train.ALGORITHMS)


def valid_value(param):
    """A value the parameter accepts, as SageMaker hands it over (a string)."""
    if param.choices:
        value = param.choices[0]
    elif param.default is not None:
        value = param.default
    else:
        value = param.low if param.low is not None else 1
    return json.dumps(value) if param.kind is not str else str(value)


def params_for(algorithm: str, **raw) -> dict:
    return train.parse_hyperparameters({"algorithm": algorithm, **raw})


def test_algo_train_is_executable():
    """SageMaker runs `train` from PATH: without the executable bit the job cannot start."""
    assert os.access(TRAIN, os.X_OK)


def test_the_bundled_job_hyperparameters_parse():
    """The strings SageMaker writes to hyperparameters.json, as local_test holds them."""
    parsed = train.parse_hyperparameters({
        "max_leaf_nodes": "5", "criterion": '"entropy"', "random_state": "0",
        "max_depth": "null", "_tuning_objective_metric": "validation:accuracy",
    })
    assert parsed["algorithm"] == "decision_tree"
    assert parsed["max_leaf_nodes"] == 5
    assert parsed["criterion"] == "entropy"
    assert parsed["max_depth"] is None
    assert parsed["min_samples_split"] == 2


@pytest.mark.parametrize(("algorithm", "name"), [
    (algorithm, name) for algorithm in ALGORITHMS for name in sorted(train.ALGORITHMS[algorithm])
])
def test_every_algorithm_accepts_its_own_hyperparameters(algorithm, name):
    param = train.ALGORITHMS[algorithm][name]
    parsed = params_for(algorithm, **{name: valid_value(param)})
    assert parsed[name] == param.coerce(name, valid_value(param))
    assert set(parsed) == set(train.COMMON) | set(train.ALGORITHMS[algorithm])


@pytest.mark.parametrize("name", sorted(train.COMMON))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_accepts_the_common_hyperparameters(algorithm, name):
    raw = {name: valid_value(train.COMMON[name])} if name != "algorithm" else {}
    assert name in params_for(algorithm, **raw)


@pytest.mark.parametrize(("algorithm", "name"), [
    ("linear", "max_depth"),
    ("linear", "criterion"),
    ("decision_tree", "n_estimators"),
    ("decision_tree", "learning_rate"),
    ("random_forest", "alpha"),
    ("gradient_boosting", "criterion"),
    ("gradient_boosting", "n_estimators"),
    ("extra_trees", "l2_regularization"),
])
def test_another_algorithms_hyperparameter_is_refused_naming_the_algorithm(algorithm, name):
    with pytest.raises(UserError) as raised:
        params_for(algorithm, **{name: "1"})
    assert str(raised.value).startswith(f"unknown hyperparameter '{name}' for algorithm '{algorithm}'; allowed: ")


def test_an_unknown_algorithm_is_refused_with_the_choices():
    with pytest.raises(UserError, match="hyperparameter 'algorithm' must be one of 'decision_tree', 'random_forest'"):
        params_for("svm")


@pytest.mark.parametrize(("algorithm", "task", "criterion", "allowed"), [
    ("decision_tree", "classification", "gini", True),
    ("decision_tree", "classification", "log_loss", True),
    ("decision_tree", "classification", "squared_error", False),
    ("decision_tree", "regression", "absolute_error", True),
    ("decision_tree", "regression", "gini", False),
    ("random_forest", "regression", "entropy", False),
    ("extra_trees", "classification", "poisson", False),
])
def test_criterion_is_checked_against_the_task(algorithm, task, criterion, allowed):
    params = params_for(algorithm, criterion=criterion)
    if allowed:
        assert train.estimator_params(algorithm, task, params)["criterion"] == criterion
    else:
        with pytest.raises(UserError, match=f"hyperparameter 'criterion' must be one of .* for {task}, "
                                            f"got '{criterion}'"):
            train.estimator_params(algorithm, task, params)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_class_weight_is_refused_for_regression(algorithm):
    params = params_for(algorithm, class_weight="balanced")
    with pytest.raises(UserError, match="hyperparameter 'class_weight' applies to classification only"):
        train.estimator_params(algorithm, "regression", params)
    assert train.estimator_params(algorithm, "classification", params)["class_weight"] == "balanced"


@pytest.mark.parametrize("algorithm", ["random_forest", "extra_trees"])
def test_max_samples_needs_bootstrap(algorithm):
    params = params_for(algorithm, bootstrap="false", max_samples="0.5")
    with pytest.raises(UserError, match="hyperparameter 'max_samples' needs bootstrap=true"):
        train.estimator_params(algorithm, "classification", params)


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
def test_infer_task_from_the_target(values, task):
    assert train.MAX_CLASSES_INFERRED == 20
    assert train.infer_task(pd.Series(values)) == task


@pytest.mark.parametrize(("values", "task", "expected"), [
    ([1.0, 2.0], "classification", [1, 2]),  # whole floats become integer labels
    (["a", "b"], "classification", ["a", "b"]),
    ([1, 2], "regression", [1.0, 2.0]),
    (["1.5", "2"], "regression", [1.5, 2.0]),  # text of numbers is fine for regression
])
def test_prepare_target_gives_labels_or_numbers(values, task, expected):
    assert train.prepare_target(pd.Series(values), task).tolist() == expected


def test_a_regression_target_with_words_is_a_user_error():
    with pytest.raises(UserError, match="task 'regression' needs a numeric target, but data row 2 has 'big'"):
        train.prepare_target(pd.Series(["1.5", "big"]), "regression")


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_builds_and_fits_with_its_defaults(algorithm, task):
    estimator = train.build_estimator(algorithm, task, params_for(algorithm))
    assert type(estimator) is train.ESTIMATORS[algorithm, task]
    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int) if task == "classification" else x[:, 0]
    assert len(estimator.fit(x, y).predict(x)) == 40


def test_hyperparameters_reach_the_estimator():
    estimator = train.build_estimator("random_forest", "classification",
                                      params_for("random_forest", n_estimators="7", max_features='"all"',
                                                 random_state="3"))
    assert (estimator.n_estimators, estimator.max_features, estimator.random_state) == (7, None, 3)


FEATURES = pd.DataFrame({"colour": ["red", "blue", None], "length": [1.0, np.nan, 3.0]})


@pytest.mark.parametrize(("frame", "expected"), [
    (FEATURES, ["colour"]),
    (FEATURES[["length"]], []),
])
def test_text_columns_are_the_non_numeric_ones(frame, expected):
    assert train.text_columns(frame) == expected


@pytest.mark.parametrize(("algorithm", "frame", "needed"), [
    ("decision_tree", FEATURES[["length"]], False),  # numbers with NaN go straight to a tree
    ("decision_tree", FEATURES, True),  # text needs encoding
    ("linear", FEATURES[["length"]], True),  # a linear model is always scaled
    ("random_forest", FEATURES[["length"]].fillna(0), False),
])
def test_preprocessing_is_built_only_where_the_estimator_needs_it(algorithm, frame, needed):
    estimator = train.build_estimator(algorithm, "classification", params_for(algorithm))
    preprocessing = train.build_preprocessing(frame, estimator, algorithm)
    assert (preprocessing is not None) is needed
    if preprocessing is not None:  # numbers out; NaN only for an estimator that takes it
        matrix = np.asarray(preprocessing.fit_transform(frame).astype(float))
        allow_nan = estimator.__sklearn_tags__().input_tags.allow_nan
        assert not np.isinf(matrix).any() and (allow_nan or not np.isnan(matrix).any())
