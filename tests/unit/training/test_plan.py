"""One decision about the data for one host and several: the same bad jobs are refused with the
same message by the one-host path and the several-host path, before any data is read or any host
joins; the channels a job has are read, scored or named as unused, never silently ignored; and a
model's predict of the wrong shape fails naming both shapes. In-process, on fixture jobs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from sagemaker_byo import Algorithm, Param
from sagemaker_byo.errors import AlgorithmError, UserError
from sagemaker_byo.training import evaluation, fitting, multihost, plan
from sagemaker_byo.training import job as jobs


def tree(params, task, features):
    return (DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor)(random_state=0, **params)


class TwoColumns:
    """A fork's model whose predict answers two columns for one target."""

    def predict(self, features):
        return np.zeros((len(features), 2))


CATALOGUE = {
    "tree": Algorithm({"max_depth": Param(int, None, low=1, nullable=True)}, build=tree,
                      distributed="data_parallel"),
    "clusters": Algorithm({}, build=lambda params, task, features: KMeans(2, n_init=1, random_state=0),
                          tasks=("unsupervised",)),
    "two_columns": Algorithm({}, fit=lambda params, task, features, target: TwoColumns()),
}
TWO_HOSTS = {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}


def table(count: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3)).round(3)
    return pd.DataFrame({"label": (x[:, 0] > 0).astype(int), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})


def make_job(tmp_path: Path, channels: dict[str, str | None] | None = None, header: bool = False,
             resource_config: dict | None = None, **hyperparameters: str) -> jobs.Job:
    """A job whose channels (name: ContentType, None for none) each hold the fixture table."""
    ml = tmp_path / "ml"
    config = {}
    for channel, content_type in (channels or {"training": "text/csv"}).items():
        (ml / "input" / "data" / channel).mkdir(parents=True)
        table(seed=len(config)).to_csv(ml / "input" / "data" / channel / "rows.csv", index=False, header=header)
        config[channel] = {} if content_type is None else {"ContentType": content_type}
    paths = jobs.settings.paths({jobs.settings.BASE_DIR: str(ml)})
    return jobs.Job(paths=paths, hyperparameters={"header": str(header).lower(), **hyperparameters},
                    input_data_config=config, resource_config=resource_config or {})


BAD_JOBS = {
    "features only for a supervised algorithm": ({"training": "text/csv;label_size=0"}, {}),
    "label_size said two ways": ({"training": "text/csv;label_size=1"}, {"label_size": "0"}),
    "label_size of the test channel disagrees": ({"training": "text/csv;label_size=1",
                                                  "test": "text/csv;label_size=0"}, {}),
    "a label_size that is no number": ({"training": "text/csv;label_size=x"}, {}),
    "a content type the reader cannot read": ({"training": "image/png"}, {}),
    "a target name without a header": ({"training": "text/csv"}, {"target": "label"}),
    "a task the algorithm has not": ({"training": "text/csv"}, {"task": "unsupervised"}),
    "an unknown algorithm": ({"training": "text/csv"}, {"algorithm": "boosting"}),
    "a hyperparameter out of bounds": ({"training": "text/csv"}, {"max_depth": "0"}),
    "a target list that disagrees with label_size": ({"training": "text/csv;label_size=1"},
                                                     {"target": '["0", "1"]'}),
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_a_bad_job_is_refused_with_the_same_message_on_one_host_and_on_two(tmp_path, case):
    channels, hyperparameters = BAD_JOBS[case]
    one = make_job(tmp_path / "one", channels, **hyperparameters)
    two = make_job(tmp_path / "two", channels, resource_config=TWO_HOSTS, **hyperparameters)
    messages = []
    for job in (one, two):
        for path in job.paths.data.rglob("*.csv"):
            path.unlink()  # reading would fail: the refusal comes first, before any data is read
        with pytest.raises(UserError) as raised:
            multihost.train(job, CATALOGUE)  # two hosts: no host is resolved or joined before it
        messages.append(str(raised.value))
        assert not list(job.paths.model.glob("model.*"))
    assert messages[0] == messages[1]


def test_the_plan_reads_training_scores_validation_and_test_and_names_every_other_channel(tmp_path):
    job = make_job(tmp_path, {"training": "text/csv", "test": "text/csv", "validation": None, "extra": None})
    (job.paths.data / "embeddings").mkdir()  # a folder no config names: a run by hand
    decided = plan.decide(job, CATALOGUE)
    assert decided.held_out == ("validation", "test")
    assert decided.unused == ("extra", "embeddings")


def test_an_unused_channel_is_named_in_the_log_and_a_test_channel_is_scored(tmp_path, caplog):
    job = make_job(tmp_path, {"training": "text/csv", "test": "text/csv", "extra": "application/x-image"})
    with caplog.at_level(logging.INFO, logger="train"):
        fitting.train(job, CATALOGUE)
    assert "channel 'extra' is not used" in caplog.text
    metrics = json.loads((job.paths.output_data / "metrics.json").read_text())
    assert set(metrics) == {"train", "test"}
    assert set(metrics["test"]) >= {"accuracy", "f1_macro"}


def test_a_test_channel_with_other_features_is_refused_naming_it(tmp_path):
    job = make_job(tmp_path, {"training": "text/csv", "test": "text/csv"})
    table().drop(columns="c").to_csv(job.channel("test") / "rows.csv", index=False, header=False)
    with pytest.raises(UserError, match="the test channel has 2 features .* but training has 3"):
        fitting.train(job, CATALOGUE)


def test_a_predict_of_two_columns_for_one_target_fails_naming_both_shapes(tmp_path):
    job = make_job(tmp_path, algorithm="two_columns")
    with pytest.raises(AlgorithmError) as raised:
        fitting.train(job, CATALOGUE)
    assert str(raised.value).startswith(
        "the model's predict gave an array of shape (40, 2) for the 40 rows of channel 'training'; "
        "this job expects shape (40,) (one value per row)")
    assert not list(job.paths.model.glob("model.*"))


def test_a_predict_of_one_column_per_row_is_the_targets_column():
    class Column:
        def predict(self, features):
            return np.array([[1.0], [2.0]])

    assert evaluation.scores("regression", Column(), None, np.array([1.0, 2.0]))["rmse"] == 0.0


def test_a_predict_that_answers_fewer_rows_fails_naming_both_shapes():
    class Short:
        def predict(self, features):
            return np.array([1.0])

    with pytest.raises(AlgorithmError, match=r"shape \(1,\) for the 2 rows of channel 'validation'"):
        evaluation.scores("regression", Short(), None, np.array([1.0, 2.0]), channel="validation")


@pytest.mark.parametrize(("kind", "distinct", "task"), [
    ("O", ["a", "b"], "classification"),
    ("f", [0.0, 1.0, 2.0], "classification"),
    ("f", [0.5, 1.0], "regression"),
    ("i", None, "regression"),  # more distinct values than classes are inferred from
    ("i", list(range(fitting.MAX_CLASSES_INFERRED + 1)), "regression"),
])
def test_the_task_is_inferred_by_one_rule_from_the_kind_and_distinct_values(kind, distinct, task):
    assert fitting.task_of(kind, distinct) == task
