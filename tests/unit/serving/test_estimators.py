"""memoize_introspection: a loaded model keeps its scikit-learn tags and fitted answer, and answers
exactly as before.

Every model here is a real scikit-learn estimator fitted on small random data. Each is compared
with a deep copy made before memoizing, on fresh random rows it was not fitted on.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from sagemaker_byo.serving.estimators import memoize_introspection

ALGO = Path(__file__).resolve().parents[3] / "algo"
CLASSES = np.array(["cat", "dog", "fish"])
COLOURS = np.array(["red", "green", "blue"])


def features(seed: int, rows: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 4))


def labels(seed: int, rows: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).choice(CLASSES, size=rows)


def frame(seed: int, rows: int = 60, colours: np.ndarray = COLOURS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"colour": rng.choice(colours, size=rows), "x1": rng.normal(size=rows),
                         "x2": rng.normal(size=rows)})


@dataclass
class Case:
    """A fitted model, the rows it was fitted on, and fresh rows to predict."""

    model: Any
    x: Any
    y: np.ndarray
    fresh: Any


def fitted(estimator, *, regression: bool = False) -> Case:
    x, y = features(0), labels(1)
    if regression:
        y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + np.random.default_rng(1).normal(size=len(x))
    return Case(estimator.fit(x, y), x, y, features(2, rows=25))


def fitted_on_a_frame(estimator) -> Case:
    x, y = frame(0), labels(1)
    # "purple" was never seen in training: the encoder ignores it, before and after memoizing alike.
    return Case(estimator.fit(x, y), x, y, frame(2, rows=25, colours=np.append(COLOURS, "purple")))


def column_pipeline() -> Pipeline:
    columns = ColumnTransformer([
        ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
        ("numbers", "passthrough", ["x1", "x2"]),
    ])
    return make_pipeline(columns, LogisticRegression(max_iter=1000))


MODELS: dict[str, Callable[[], Case]] = {
    "decision tree": lambda: fitted(DecisionTreeClassifier(random_state=0)),
    "random forest": lambda: fitted(RandomForestClassifier(n_estimators=5, random_state=0)),
    # estimators_ is a 2-D object array of trees, one column per class
    "gradient boosting": lambda: fitted(GradientBoostingClassifier(n_estimators=5, random_state=0)),
    "histogram gradient boosting": lambda: fitted(HistGradientBoostingRegressor(max_iter=10, random_state=0),
                                                  regression=True),
    "logistic regression": lambda: fitted(LogisticRegression(max_iter=1000)),
    "k nearest neighbours": lambda: fitted(KNeighborsClassifier(n_neighbors=3)),
    "svc with probabilities": lambda: fitted(SVC(probability=True, random_state=0)),
    "scaler and logistic regression": lambda: fitted(make_pipeline(StandardScaler(), LogisticRegression())),
    "column transformer pipeline on a data frame": lambda: fitted_on_a_frame(column_pipeline()),
    "soft voting": lambda: fitted(VotingClassifier(
        [("linear", LogisticRegression()), ("tree", DecisionTreeClassifier(random_state=0))], voting="soft")),
    "grid search": lambda: fitted(GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=3)),
}


@pytest.fixture(params=list(MODELS))
def case(request) -> Case:
    return MODELS[request.param]()


def predictions(model, rows) -> dict[str, np.ndarray]:
    """What each prediction method the model offers answers for these rows."""
    methods = ("predict", "predict_proba")
    return {method: getattr(model, method)(rows) for method in methods if hasattr(model, method)}


def assert_same_predictions(model, reference, rows) -> None:
    expected = predictions(reference, rows)
    actual = predictions(model, rows)
    assert actual.keys() == expected.keys()
    for method, values in expected.items():
        np.testing.assert_array_equal(actual[method], values, err_msg=method)


# -- predictions do not change ------------------------------------------------------------


def test_predictions_are_identical_after_memoizing(case):
    before = copy.deepcopy(case.model)
    assert memoize_introspection(case.model) >= 1
    assert_same_predictions(case.model, before, case.fresh)


def test_tags_of_the_model_are_unchanged_and_kept(case):
    before = get_tags(case.model)
    assert get_tags(case.model) is not before  # scikit-learn builds them afresh on every call
    memoize_introspection(case.model)
    assert get_tags(case.model) == before
    assert get_tags(case.model) is get_tags(case.model)


@pytest.mark.parametrize("build", [
    lambda: fitted(make_pipeline(StandardScaler(), LogisticRegression())).model,
    lambda: fitted_on_a_frame(column_pipeline()).model,
], ids=["scaler and logistic regression", "column transformer pipeline"])
def test_tags_of_every_estimator_in_a_pipeline_are_unchanged(build):
    pipeline = build()
    inside = [pipeline, *pipeline.named_steps.values()]
    for step in pipeline.named_steps.values():
        if isinstance(step, ColumnTransformer):
            inside += [transformer for _, transformer, _ in step.transformers_]
    before = [get_tags(estimator) for estimator in inside]
    memoize_introspection(pipeline)
    assert [get_tags(estimator) for estimator in inside] == before


# -- how many estimators are found ---------------------------------------------------------


@pytest.mark.parametrize(("build", "count"), [
    (lambda: fitted(DecisionTreeClassifier()).model, 1),
    # the pipeline and its two steps
    (lambda: fitted(make_pipeline(StandardScaler(), LogisticRegression())).model, 3),
    # the forest, its template tree (also its estimator_) and its 3 fitted trees
    (lambda: fitted(RandomForestClassifier(n_estimators=3, random_state=0)).model, 5),
    # the ensemble, 4 stages of one regression tree per class (3 classes) and the init_ estimator
    (lambda: fitted(GradientBoostingClassifier(n_estimators=4, random_state=0)).model, 1 + 4 * 3 + 1),
    # the ensemble, the two estimators as given, their two fitted clones and the label encoder le_
    (lambda: fitted(VotingClassifier([("linear", LogisticRegression()), ("tree", DecisionTreeClassifier())],
                                     voting="soft")).model, 6),
    # the search, the estimator as given and the refitted best_estimator_
    (lambda: fitted(GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3)).model, 3),
], ids=["tree", "pipeline", "forest", "gradient boosting", "voting", "grid search"])
def test_count_is_the_number_of_distinct_estimators_reachable(build, count):
    assert memoize_introspection(build()) == count


def test_an_estimator_reached_twice_counts_once():
    tree = fitted(DecisionTreeClassifier()).model
    assert memoize_introspection([tree, (tree,), {"again": tree}]) == 1


# -- fitted and unfitted -------------------------------------------------------------------


@pytest.mark.parametrize("estimator", [
    DecisionTreeClassifier(),
    LogisticRegression(),
    make_pipeline(StandardScaler(), LogisticRegression()),
    GridSearchCV(LogisticRegression(), {"C": [1.0]}),
], ids=["tree", "logistic regression", "pipeline", "grid search"])
def test_an_unfitted_estimator_still_raises_not_fitted_error(estimator):
    memoize_introspection(estimator)
    with pytest.raises(NotFittedError):
        estimator.predict(features(2))


def test_an_unfitted_template_inside_a_fitted_model_stays_unfitted():
    search = fitted(GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3)).model
    memoize_introspection(search)
    check_is_fitted(search)
    check_is_fitted(search.best_estimator_)
    with pytest.raises(NotFittedError):
        check_is_fitted(search.estimator)


def test_an_estimator_memoized_while_unfitted_can_still_be_fitted():
    model = LogisticRegression()
    memoize_introspection(model)
    x, y = features(0), labels(1)
    np.testing.assert_array_equal(model.fit(x, y).predict(x), LogisticRegression().fit(x, y).predict(x))


# -- pickling and cloning ------------------------------------------------------------------


def test_a_memoized_model_pickles_and_predicts_the_same(case):
    memoize_introspection(case.model)
    restored = pickle.loads(pickle.dumps(case.model))
    assert_same_predictions(restored, case.model, case.fresh)
    assert get_tags(restored) == get_tags(case.model)


def test_a_clone_of_a_memoized_model_is_unfitted_and_refits_to_the_same_predictions(case):
    memoize_introspection(case.model)
    copy_ = clone(case.model)
    with pytest.raises(NotFittedError):
        copy_.predict(case.fresh)
    assert_same_predictions(copy_.fit(case.x, case.y), case.model, case.fresh)


# -- models that are not scikit-learn estimators -------------------------------------------


class ThresholdRule:
    """A model a user might serve without scikit-learn: anything with a predict method."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows)[:, 0] > self.threshold).astype(int)


def test_a_plain_python_model_is_left_alone():
    rule = ThresholdRule(0.5)
    attributes = dict(vars(rule))
    assert memoize_introspection(rule) == 0
    assert vars(rule) == attributes
    np.testing.assert_array_equal(rule.predict([[0.1], [0.9]]), [0, 1])


@pytest.mark.parametrize("model", [
    {"threshold": 0.5, "labels": ["cat", "dog"]},
    [1, 2.5, "three"],
    np.array(["a", None, 3], dtype=object),
    None,
], ids=["dict", "list", "object array", "none"])
def test_values_without_estimators_are_left_alone_and_count_zero(model):
    before = copy.deepcopy(model)
    assert memoize_introspection(model) == 0
    if isinstance(model, np.ndarray):
        np.testing.assert_array_equal(model, before)
    else:
        assert model == before


def test_a_self_referencing_model_terminates():
    case = fitted(DecisionTreeClassifier(random_state=0))
    tree = case.model
    expected = tree.predict(case.fresh)
    loop: list = []
    loop.append(loop)
    tree.itself = [tree, loop]
    tree.index = {"tree": tree}
    assert memoize_introspection(tree) == 1
    np.testing.assert_array_equal(tree.predict(case.fresh), expected)


def test_without_scikit_learn_loaded_nothing_is_done_and_nothing_is_imported():
    code = ("import sys; from sagemaker_byo.serving.estimators import memoize_introspection; "
            "print(memoize_introspection({'weights': [1, 2]}), 'sklearn' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ALGO, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split() == ["0", "False"]


def test_a_large_vocabulary_does_not_stop_the_walk_before_the_estimators_after_it():
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(7)
    words = np.array([f"w{i}" for i in range(150_000)])
    frame = pd.DataFrame({"x": rng.normal(size=3000),
                          "t": [" ".join(rng.choice(words, 60)) for _ in range(3000)]})
    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["x"]), ("text", TfidfVectorizer(), "t")]),
        LogisticRegression(max_iter=200),
    ).fit(frame, rng.integers(0, 2, 3000))
    assert len(model[0].named_transformers_["text"].vocabulary_) > 100_000
    # pipeline, column transformer, its 2 templates and 2 fitted transformers (the fitted
    # vectorizer holding a TfidfTransformer of its own), the classifier
    assert memoize_introspection(model) == 8
    assert "__sklearn_is_fitted__" in vars(model[0].named_transformers_["num"])
