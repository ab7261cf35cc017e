"""A model of several targets, end to end: the real `algo/train` of the tests' fork trains it on a
job made here (`text/csv;label_size=2`, or a header and a `target` list), prints averaged and
per-target metrics and writes model.json's target list; refuses an algorithm that takes one
target with a failure file and no model; and the real `algo/serve` answers each row with its
vector of targets, in CSV, JSON and JSON Lines, as the model's own `predict` does, in order."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from support import Server, answers, bodies, have_nginx, require, run_train

CONFIG = ("input", "config")


def rows(count: int, seed: int) -> pd.DataFrame:
    """Two targets (`price`, `volume`) from three features."""
    x = np.random.default_rng(seed).normal(size=(count, 3)).round(4)
    return pd.DataFrame({"price": (x @ [1.0, 2.0, 0.5]).round(4), "volume": (x @ [-1.0, 0.3, 2.0] + 10).round(4),
                         "x": x[:, 0], "y": x[:, 1], "z": x[:, 2]})


def make_job(ml: Path, hyperparameters: dict[str, str], content_type: str, header: bool = False,
             columns: list[str] | None = None) -> Path:
    """A fresh /opt/ml: a training and a validation channel, and the three config files."""
    config = ml.joinpath(*CONFIG)
    config.mkdir(parents=True)
    for channel, seed, count in (("training", 0, 300), ("validation", 1, 60)):
        folder = ml / "input" / "data" / channel
        folder.mkdir(parents=True)
        frame = rows(count, seed)
        frame[columns or list(frame.columns)].to_csv(folder / "rows.csv", index=False, header=header)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = {channel: {"ContentType": content_type, "TrainingInputMode": "File"}
                for channel in ("training", "validation")}
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for folder in ("model", "output"):
        (ml / folder).mkdir()
    return ml


@pytest.fixture(scope="module")
def label_size_2(tmp_path_factory):
    """A forest trained by the real `train` on headerless rows whose first two columns are targets."""
    ml = make_job(tmp_path_factory.mktemp("label-size-2") / "ml",
                  {"algorithm": "random_forest", "n_estimators": "20", "random_state": "0"}, "text/csv;label_size=2")
    result = run_train(ml, timeout=300)
    return ml, result


def test_a_job_with_label_size_2_exits_zero_and_prints_averaged_and_per_target_metrics(label_size_2):
    ml, result = label_size_2
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (ml / "output" / "failure").exists()
    printed = dict(line.rstrip(";").split("=", 1) for line in result.stdout.splitlines() if ":" in line and "=" in line)
    for channel in ("train", "validation"):
        for metric in ("rmse", "mae", "r2", "rmse_0", "rmse_1", "mae_0", "mae_1", "r2_0", "r2_1"):
            assert f"{channel}:{metric}" in printed, (channel, metric, result.stdout)
    saved = json.loads((ml / "output" / "data" / "metrics.json").read_text())
    validation = saved["validation"]
    assert validation["rmse"] == pytest.approx((validation["rmse_0"] + validation["rmse_1"]) / 2)
    assert float(printed["validation:rmse"]) == pytest.approx(validation["rmse"], abs=1e-6)
    assert validation["r2"] > 0.5
    assert not (ml / "output" / "data" / "evaluation.svg").exists()


def test_a_job_with_label_size_2_describes_its_targets_and_features_in_model_json(label_size_2):
    ml, result = label_size_2
    assert result.returncode == 0, result.stderr[-3000:]
    description = json.loads((ml / "model" / "model.json").read_text())
    assert description["target"] == ["0", "1"] and description["task"] == "regression"
    assert description["feature_names"] == ["column_3", "column_4", "column_5"]
    assert [c["name"] for c in description["input"]["columns"]] == ["column_3", "column_4", "column_5"]
    assert joblib.load(ml / "model" / "model.joblib").n_outputs_ == 2


def test_targets_named_in_a_header_train_from_any_position(tmp_path):
    ml = make_job(tmp_path / "ml", {"algorithm": "decision_tree", "header": "true", "max_depth": "6",
                                    "target": json.dumps(["volume", "price"])},
                  "text/csv", header=True, columns=["x", "volume", "y", "price", "z"])
    result = run_train(ml, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    description = json.loads((ml / "model" / "model.json").read_text())
    assert description["target"] == ["volume", "price"] and description["feature_names"] == ["x", "y", "z"]
    assert "validation:rmse_volume=" in result.stdout and "validation:r2_price=" in result.stdout


@pytest.mark.parametrize(("algorithm", "hyperparameters", "reason"), [
    ("gradient_boosting", {}, "UserError: algorithm 'gradient_boosting' (HistGradientBoostingRegressor) takes one "
                              "target, and this job has 2 (0, 1); train one model per target"),
    ("decision_tree", {"label_size": "3"}, "UserError: channel 'training' ContentType label_size=2 and channel "
                                           "'validation' ContentType label_size=2 but hyperparameter label_size=3: "
                                           "they disagree"),
])
def test_a_job_whose_targets_cannot_be_trained_fails_with_a_reason_and_leaves_no_model(tmp_path, algorithm,
                                                                                      hyperparameters, reason):
    ml = make_job(tmp_path / "ml", {"algorithm": algorithm, **hyperparameters}, "text/csv;label_size=2")
    result = run_train(ml, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert (ml / "output" / "failure").read_text().startswith(reason)
    assert "a bug in the training code" not in (ml / "output" / "failure").read_text()
    assert list((ml / "model").iterdir()) == []


# -- served by the real algo/serve ---------------------------------------------------------------


@pytest.fixture(scope="module")
def served(label_size_2):
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    ml, result = label_size_2
    assert result.returncode == 0, result.stderr[-3000:]
    server = Server(ml).start()
    yield joblib.load(ml / "model" / "model.joblib"), server
    server.stop()


@pytest.mark.parametrize("count", [1, 25])
@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_the_served_model_answers_each_row_with_its_targets_as_its_own_predict_does(served, count, accept):
    model, server = served
    features = rows(count, seed=10 + count)[["x", "y", "z"]].to_numpy()
    want = model.predict(features)
    assert want.shape == (count, 2)
    for content_type, body in bodies(features).items():
        response = server.invoke(body, content_type, Accept=accept)
        assert response.status_code == 200, (content_type, response.text[:300])
        got = answers(response, accept)
        assert len(got) == count and all(len(row) == 2 for row in got), (content_type, response.text[:300])
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{content_type} -> {accept}")
