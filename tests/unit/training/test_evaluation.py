"""Metrics by task (the names MetricDefinitions match, values as scikit-learn computes them),
metrics.json, and the evaluation figure as a self-contained SVG."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from sagemaker_byo.training import evaluation
from sagemaker_byo.training.evaluation import CLASSIFICATION, REGRESSION, scores

SVG = "{http://www.w3.org/2000/svg}"
RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 3))


def classifier(labels) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, labels)


BINARY = (X[:, 0] > 0).astype(int)
THREE = np.array(["a", "b", "c"])[np.digitize(X[:, 1], [-0.5, 0.5])]


@pytest.mark.parametrize(("task", "model", "target", "names"), [
    (CLASSIFICATION, classifier(BINARY), BINARY, ["accuracy", "f1_macro", "log_loss", "roc_auc"]),
    (CLASSIFICATION, classifier(THREE), THREE, ["accuracy", "f1_macro", "log_loss", "roc_auc"]),
    (CLASSIFICATION, LinearSVC().fit(X, THREE), THREE, ["accuracy", "f1_macro"]),  # no predict_proba
    (REGRESSION, LinearRegression().fit(X, X[:, 0] * 2 + 1), X[:, 0] * 2 + 1, ["rmse", "mae", "r2"]),
])
def test_metric_names_depend_on_the_task_and_the_model(task, model, target, names):
    assert list(scores(task, model, X, target)) == names


@pytest.mark.parametrize(("model", "target"), [(classifier(BINARY), BINARY), (classifier(THREE), THREE)])
def test_classification_metrics_equal_scikit_learns(model, target):
    predicted, proba = model.predict(X), model.predict_proba(X)
    result = scores(CLASSIFICATION, model, X, target)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(target, predicted))
    assert result["f1_macro"] == pytest.approx(skm.f1_score(target, predicted, average="macro"))
    assert result["log_loss"] == pytest.approx(skm.log_loss(target, proba, labels=model.classes_))
    expected_auc = (skm.roc_auc_score(target, proba[:, 1]) if len(model.classes_) == 2
                    else skm.roc_auc_score(target, proba, multi_class="ovr"))
    assert result["roc_auc"] == pytest.approx(expected_auc)


def test_regression_metrics_equal_scikit_learns():
    target = X[:, 0] * 2 + RNG.normal(scale=0.3, size=len(X))
    model = LinearRegression().fit(X, target)
    predicted = model.predict(X)
    assert scores(REGRESSION, model, X, target) == pytest.approx({
        "rmse": math.sqrt(skm.mean_squared_error(target, predicted)),
        "mae": skm.mean_absolute_error(target, predicted),
        "r2": skm.r2_score(target, predicted),
    })


@pytest.mark.parametrize(("rows", "expected"), [
    (THREE != "c", ["accuracy", "f1_macro", "log_loss"]),  # a class the model knows is absent
    (THREE == "a", ["accuracy", "f1_macro", "log_loss"]),  # one class only
])
def test_roc_auc_is_absent_when_a_class_is_missing_from_the_data(rows, expected):
    model = classifier(THREE)
    assert list(scores(CLASSIFICATION, model, X[rows], THREE[rows])) == expected


def test_log_loss_and_roc_auc_are_absent_for_a_class_the_model_never_saw():
    model = classifier(THREE)
    target = THREE.copy()
    target[0] = "z"
    assert list(scores(CLASSIFICATION, model, X, target)) == ["accuracy", "f1_macro"]


def test_r2_of_one_row_is_nan_not_an_error():
    model = LinearRegression().fit(X, X[:, 0])
    assert math.isnan(scores(REGRESSION, model, X[:1], X[:1, 0])["r2"])


def test_write_metrics_writes_json_with_null_for_undefined_values(tmp_path):
    path = tmp_path / "output" / "metrics.json"
    evaluation.write_metrics(path, {"train": {"rmse": 0.5, "r2": float("nan")}, "validation": {"mae": 1.0}})
    assert json.loads(path.read_text()) == {"train": {"rmse": 0.5, "r2": None}, "validation": {"mae": 1.0}}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


@pytest.mark.parametrize("classes", [["a", "b"], ["a", "b", "c"], [0, 1, 2, 3, 4], ["<tag>", "x & y"]])
def test_confusion_matrix_svg_is_well_formed_with_one_rect_per_cell(classes):
    target = np.array(classes * 3)
    predicted = np.roll(target, 1)
    root = parse(evaluation.confusion_matrix_svg(target, predicted, classes, "train: <confusion> & matrix"))
    rects = root.findall(f"{SVG}rect")
    cells = [r for r in rects if r.get("width") != "100%"]  # the first rect is the background
    assert len(cells) == len(classes) ** 2
    counts = [int(t.text) for t in root.findall(f"{SVG}text") if t.get("fill")]  # the cells' counts
    assert len(counts) == len(classes) ** 2 and sum(counts) == len(target)
    assert root.find(f"{SVG}title").text == "train: <confusion> & matrix"


def test_predicted_vs_actual_svg_has_one_point_per_row_up_to_the_limit():
    target = np.arange(50, dtype=float)
    root = parse(evaluation.predicted_vs_actual_svg(target, target + 1, "validation"))
    assert len(root.findall(f"{SVG}circle")) == 50
    sampled = parse(evaluation.predicted_vs_actual_svg(target, target, "v", limit=10))
    assert len(sampled.findall(f"{SVG}circle")) == 10


def test_predicted_vs_actual_svg_of_constant_values_is_finite():
    svg = evaluation.predicted_vs_actual_svg(np.ones(3), np.ones(3), "flat")
    assert "nan" not in svg and "inf" not in svg
    parse(svg)


@pytest.mark.parametrize(("task", "model", "target", "element"), [
    (CLASSIFICATION, classifier(THREE), THREE, "rect"),
    (REGRESSION, LinearRegression().fit(X, X[:, 0]), X[:, 0], "circle"),
])
def test_write_figure_writes_the_figure_of_the_task(tmp_path, task, model, target, element):
    path = tmp_path / "output" / "evaluation.svg"
    evaluation.write_figure(path, task, model, X, target, "validation")
    root = parse(path.read_text())
    assert root.findall(f"{SVG}{element}")
    assert root.find(f"{SVG}title").text.startswith("validation: ")


class Threshold:
    """A classifier a fork wrote itself: predict and predict_proba, but no classes_."""

    def predict(self, rows):
        return np.where(np.asarray(rows)[:, 0] > 0, "up", "down")

    def predict_proba(self, rows):
        up = (np.asarray(rows)[:, 0] > 0).astype(float)
        return np.column_stack([1 - up, up])


def test_a_classifier_without_classes_gets_the_metrics_that_need_no_class_order():
    target = np.where(X[:, 0] > 0, "up", "down")
    assert list(scores(CLASSIFICATION, Threshold(), X, target)) == ["accuracy", "f1_macro"]


def test_a_classifier_without_classes_gets_a_confusion_matrix_of_the_classes_seen(tmp_path):
    path = tmp_path / "evaluation.svg"
    evaluation.write_figure(path, CLASSIFICATION, Threshold(), X, np.where(X[:, 0] > 0.5, "up", "down"), "train")
    assert len(parse(path.read_text()).findall(f"{SVG}rect")) >= 4  # 2 x 2 cells


# -- metrics of rows held on several hosts: each host's sums, combined on the leader -------------

SPLITS = ([60], [20, 40], [10, 25, 25], [1, 59])  # rows held by each host


def split(*arrays, sizes):
    bounds = np.cumsum(sizes)[:-1]
    return zip(*(np.split(a, bounds) for a in arrays), strict=True)


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize(("model", "target"), [(classifier(BINARY), BINARY), (classifier(THREE), THREE)])
def test_combined_classification_metrics_equal_those_of_all_the_rows(model, target, sizes):
    classes = list(model.classes_)
    parts = [evaluation.partial(CLASSIFICATION, model, x, y, classes) for x, y in split(X, target, sizes=sizes)]
    combined = evaluation.combine(CLASSIFICATION, parts)
    whole = scores(CLASSIFICATION, model, X, target)
    assert set(combined) == {"accuracy", "f1_macro", "log_loss"}  # ROC AUC does not add up across hosts
    for name in combined:
        assert combined[name] == pytest.approx(whole[name], rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("sizes", SPLITS)
def test_combined_regression_metrics_equal_those_of_all_the_rows(sizes):
    target = X[:, 0] * 2 + 1 + RNG.normal(scale=0.3, size=len(X))
    model = LinearRegression().fit(X, target)
    parts = [evaluation.partial(REGRESSION, model, x, y, None) for x, y in split(X, target, sizes=sizes)]
    combined = evaluation.combine(REGRESSION, parts)
    whole = scores(REGRESSION, model, X, target)
    assert combined == pytest.approx(whole, rel=1e-9)


def test_combined_f1_counts_a_class_only_one_host_predicts_as_scikit_learn_does():
    """A class one host's rows never hold, but its model predicts, still counts in the macro F1."""
    model = classifier(THREE)
    predicted = model.predict(X)
    keep = THREE != "c"  # no row of class c: "c" may be predicted but is never the target
    x, y = X[keep], THREE[keep]
    parts = [evaluation.partial(CLASSIFICATION, model, a, b, list(model.classes_))
             for a, b in split(x, y, sizes=[len(y) // 2, len(y) - len(y) // 2])]
    expected = skm.f1_score(y, predicted[keep], average="macro", zero_division=0)
    assert evaluation.combine(CLASSIFICATION, parts)["f1_macro"] == pytest.approx(expected)


def test_no_log_loss_across_hosts_when_a_model_has_no_probabilities():
    model = LinearSVC().fit(X, THREE)
    parts = [evaluation.partial(CLASSIFICATION, model, x, y, list(model.classes_))
             for x, y in split(X, THREE, sizes=[30, 30])]
    assert set(evaluation.combine(CLASSIFICATION, parts)) == {"accuracy", "f1_macro"}


def test_combined_r2_of_a_constant_target_is_nan_not_an_error():
    target = np.full(len(X), 3.0)
    model = LinearRegression().fit(X, target)
    parts = [evaluation.partial(REGRESSION, model, x, y, None) for x, y in split(X, target, sizes=[30, 30])]
    assert math.isnan(evaluation.combine(REGRESSION, parts)["r2"])
