"""The bundled algorithm's own tests (algo/algorithm.py): a fork edits these.

Its schemas, the estimators it builds for each task, the preprocessing they get, and the
hyperparameters local_test's job sets.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from sagemaker_byo.errors import UserError
from sagemaker_byo.training import fitting, plan
from support import SAMPLE_JOB, import_sample

ALGORITHMS = import_sample("algorithm").ALGORITHMS
NAMES = list(ALGORITHMS)
ESTIMATORS = {
    ("decision_tree", "classification"): "DecisionTreeClassifier",
    ("decision_tree", "regression"): "DecisionTreeRegressor",
    ("random_forest", "classification"): "RandomForestClassifier",
    ("random_forest", "regression"): "RandomForestRegressor",
    ("extra_trees", "classification"): "ExtraTreesClassifier",
    ("extra_trees", "regression"): "ExtraTreesRegressor",
    ("gradient_boosting", "classification"): "HistGradientBoostingClassifier",
    ("gradient_boosting", "regression"): "HistGradientBoostingRegressor",
    ("lightgbm", "classification"): "LGBMClassifier",
    ("lightgbm", "regression"): "LGBMRegressor",
    ("linear", "classification"): "LogisticRegression",
    ("linear", "regression"): "Ridge",
}


def valid_value(param):
    """A value the parameter accepts, as SageMaker hands it over (a string)."""
    if param.choices:
        value = param.choices[0]
    elif param.default is not None:
        value = param.default
    else:
        value = param.low if param.low is not None else 1
    return json.dumps(value) if param.kind is not str else str(value)


def params_for(name: str, **raw) -> dict:
    return plan.parse_hyperparameters({"algorithm": name, **raw}, ALGORITHMS)


def own(name: str, task: str, **raw) -> dict:
    raw = {"algorithm": name, **raw}
    return fitting.for_task(name, ALGORITHMS[name], params_for(name, **raw), raw, task)


def build(name: str, task: str, features: pd.DataFrame | None = None, **raw):
    features = features if features is not None else pd.DataFrame({"x": [0.0, 1.0]})
    return ALGORITHMS[name].build(own(name, task, **raw), task, features)


def final(model):
    return model[-1] if isinstance(model, Pipeline) else model


def test_the_catalogue_and_its_default():
    assert NAMES == ["decision_tree", "random_forest", "extra_trees", "gradient_boosting", "lightgbm", "linear"]
    assert params_for("decision_tree")["algorithm"] == plan.parse_hyperparameters({}, ALGORITHMS)["algorithm"]


def test_the_bundled_job_hyperparameters_parse():
    """local_test's hyperparameters.json, and the strings SageMaker and a tuning job add."""
    raw = json.loads((SAMPLE_JOB / "input" / "config" / "hyperparameters.json").read_text())
    parsed = plan.parse_hyperparameters({**raw, "max_depth": "null",
                                            "_tuning_objective_metric": "validation:accuracy"}, ALGORITHMS)
    assert parsed["algorithm"] == "decision_tree"
    assert (parsed["max_leaf_nodes"], parsed["criterion"], parsed["random_state"]) == (5, "gini", 0)
    assert parsed["max_depth"] is None and parsed["min_samples_split"] == 2


@pytest.mark.parametrize(("name", "key"), [(n, k) for n in NAMES for k in sorted(ALGORITHMS[n].hyperparameters)])
def test_every_algorithm_accepts_its_own_hyperparameters(name, key):
    param = ALGORITHMS[name].hyperparameters[key]
    parsed = params_for(name, **{key: valid_value(param)})
    assert parsed[key] == param.coerce(key, valid_value(param))
    assert set(parsed) == set(plan.common(ALGORITHMS)) | set(ALGORITHMS[name].hyperparameters)


@pytest.mark.parametrize("name", NAMES)
def test_every_bundled_algorithm_takes_random_state_and_class_weight_for_classification(name):
    schema = ALGORITHMS[name].hyperparameters
    assert schema["random_state"].default == 0
    assert schema["class_weight"].tasks == ("classification",)


@pytest.mark.parametrize(("name", "key"), [
    ("linear", "max_depth"), ("linear", "criterion"), ("decision_tree", "n_estimators"),
    ("decision_tree", "learning_rate"), ("random_forest", "alpha"), ("gradient_boosting", "criterion"),
    ("gradient_boosting", "n_estimators"), ("extra_trees", "l2_regularization"), ("decision_tree", "n_jobs"),
])
def test_another_algorithms_hyperparameter_is_refused_naming_the_algorithm(name, key):
    with pytest.raises(UserError) as raised:
        params_for(name, **{key: "1"})
    assert str(raised.value).startswith(f"unknown hyperparameter '{key}' for algorithm '{name}'; allowed: ")


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("name", NAMES)
def test_every_algorithm_builds_its_estimator_and_fits_with_its_defaults(name, task):
    model = build(name, task)
    assert type(final(model)).__name__ == ESTIMATORS[name, task]
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) if task == "classification" else x[:, 0].astype(float)
    assert len(model.fit(x, y).predict(x)) == 40


@pytest.mark.parametrize(("name", "task", "criterion", "allowed"), [
    ("decision_tree", "classification", "gini", True),
    ("decision_tree", "classification", "log_loss", True),
    ("decision_tree", "classification", "squared_error", False),
    ("decision_tree", "regression", "absolute_error", True),
    ("decision_tree", "regression", "gini", False),
    ("random_forest", "regression", "entropy", False),
    ("extra_trees", "classification", "poisson", False),
])
def test_scikit_learn_checks_criterion_against_the_task_when_fitted(name, task, criterion, allowed):
    x = np.abs(np.random.default_rng(0).normal(size=(20, 2)))
    y = (x[:, 0] > 0.5).astype(int)
    model = build(name, task, criterion=criterion)
    if allowed:
        assert model.fit(x, y).criterion == criterion
    else:  # the plumbing turns this into a UserError naming the algorithm
        with pytest.raises(ValueError, match=f"The 'criterion' parameter .* Got '{criterion}'"):
            model.fit(x, y)


@pytest.mark.parametrize("name", NAMES)
def test_class_weight_is_refused_for_regression(name):
    with pytest.raises(UserError, match=f"hyperparameter 'class_weight' of algorithm '{name}' applies to "
                                        f"classification only"):
        own(name, "regression", class_weight="balanced")
    assert final(build(name, "classification", class_weight="balanced")).class_weight == "balanced"


def test_linear_takes_C_for_classification_and_alpha_for_regression():
    assert final(build("linear", "classification", C="0.5")).C == 0.5
    assert final(build("linear", "regression", alpha="2")).alpha == 2.0
    with pytest.raises(UserError, match="'alpha' of algorithm 'linear' applies to regression only"):
        own("linear", "classification", alpha="2")


@pytest.mark.parametrize("name", ["random_forest", "extra_trees"])
def test_max_samples_needs_bootstrap(name):
    with pytest.raises(UserError, match="hyperparameter 'max_samples' needs bootstrap=true"):
        build(name, "classification", bootstrap="false", max_samples="0.5")


def test_hyperparameters_reach_the_estimator():
    estimator = build("random_forest", "classification", n_estimators="7", max_features='"all"', random_state="3")
    assert (estimator.n_estimators, estimator.max_features, estimator.random_state) == (7, None, 3)


def test_algorithms_that_train_on_several_hosts_and_how():
    assert {n: a.distributed for n, a in ALGORITHMS.items() if a.distributed} == {
        "random_forest": "joblib", "extra_trees": "joblib", "lightgbm": "data_parallel"}


def test_growing_algorithms():
    assert {n: a.grows for n, a in ALGORITHMS.items() if a.grows} == {
        "random_forest": "n_estimators", "extra_trees": "n_estimators", "gradient_boosting": "max_iter"}


FEATURES = pd.DataFrame({"colour": ["red", "blue", None], "length": [1.0, np.nan, 3.0]})


@pytest.mark.parametrize(("name", "frame", "needed"), [
    ("decision_tree", FEATURES[["length"]], False),  # numbers with NaN go straight to a tree
    ("decision_tree", FEATURES, True),  # text needs encoding
    ("linear", FEATURES[["length"]], True),  # a linear model is always scaled
    ("random_forest", FEATURES[["length"]].fillna(0), False),
    ("lightgbm", FEATURES[["length"]], False),  # LightGBM takes missing numbers as they are
    ("lightgbm", FEATURES, True),
])
def test_preprocessing_is_built_only_where_the_estimator_needs_it(name, frame, needed):
    model = build(name, "classification", frame)
    assert isinstance(model, Pipeline) is needed
