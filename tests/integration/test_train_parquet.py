"""The real `train`, in a fork whose algorithm.py is the fixture catalogue, on Parquet channels as
SageMaker hands them over (ContentType application/x-parquet; one file, or Hive partition folders
as Feature Store, Athena and Spark write them): the same table trains the same model as its CSV.
And a channel too large for the container's memory fails before the fit, with a failure file
that names the sizes (the container's limit is a cgroup folder the test writes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import forks
from integration.test_train_features import FOREST, Outcome, config, run_all, table, write_json
from support import copy_test_dir

MIB = 2 ** 20


def frame() -> pd.DataFrame:
    """label, size, weight, color: the partition column last, where pyarrow puts it."""
    return table("classification", missing=False)[["label", "size", "weight", "color"]]


def channel_config(content_type: str, mode: str = "File", channels=("training",)) -> dict:
    return {name: {"ContentType": content_type, "TrainingInputMode": mode, "S3DistributionType": "FullyReplicated",
                   "RecordWrapperType": "None"} for name in channels}


def arrange(write, content_type: str, mode: str = "File", validation: bool = False, **hyperparameters: str):
    def run(ml: Path) -> None:
        data = ml / "input" / "data"
        for child in data.iterdir():
            child.unlink() if child.is_file() else shutil.rmtree(child)
        channels = ("training", "validation") if validation else ("training",)
        for name in channels:
            (data / name).mkdir(parents=True)
            write(data / name)
        write_json(config(ml, "inputdataconfig.json"), channel_config(content_type, mode, channels))
        write_json(config(ml, "hyperparameters.json"),
                   {"header": "true", "target": "label", **FOREST, **hyperparameters})
    return run


def as_csv(folder: Path) -> None:
    frame().to_csv(folder / "data.csv", index=False)


def as_parquet(folder: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame(), preserve_index=False), folder / "data.parquet")


def as_partitions(folder: Path) -> None:
    rows = frame()
    for color, part in rows.groupby("color"):
        path = folder / f"color={color}" / "part-00000.snappy.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(part.drop(columns="color"), preserve_index=False), path)


def with_timestamp(folder: Path) -> None:
    rows = frame().assign(seen=pd.Timestamp("2026-12-07"))
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "data.parquet")


def memory_left(megabytes: int):
    """The container as a cgroup v2 of 2 GiB with `megabytes` of it free."""
    def run(ml: Path) -> None:
        cgroup = ml.parent / "cgroup"
        cgroup.mkdir()
        (cgroup / "memory.max").write_text(f"{2048 * MIB}\n")
        (cgroup / "memory.current").write_text(f"{(2048 - megabytes) * MIB}\n")
        (cgroup / "memory.stat").write_text("inactive_file 0\n")
        (ml.parent / "self-cgroup").write_text("0::/\n")
    return run


JOBS = {
    "csv": arrange(as_csv, "text/csv", validation=True),
    "parquet file": arrange(as_parquet, "application/x-parquet", validation=True),
    "hive partitions, FastFile": arrange(as_partitions, "application/x-parquet", mode="FastFile"),
    "parquet by its name, no ContentType": arrange(as_parquet, "", target="0", header="false"),
    "timestamp column": arrange(with_timestamp, "application/x-parquet"),
    "parquet in Pipe mode": arrange(as_parquet, "application/x-parquet", mode="Pipe"),
}
NO_MEMORY = {"csv, 0 MiB free": (arrange(as_csv, "text/csv"), memory_left(0)),
             "csv, 1 GiB free": (arrange(as_csv, "text/csv"), memory_left(1024))}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    fork = forks.make_fork(tmp_path_factory.mktemp("fork") / "algo")
    results = run_all(fork, JOBS, tmp_path_factory.mktemp("parquet"))
    for name, (job, cgroup) in NO_MEMORY.items():
        ml = tmp_path_factory.mktemp("memory") / "ml"
        copy_test_dir(ml)
        job(ml)
        cgroup(ml)
        results[name] = Outcome(ml, forks.run_train(fork, ml, SAGEMAKER_CGROUP_ROOT=str(ml.parent / "cgroup"),
                                                    SAGEMAKER_PROC_SELF_CGROUP=str(ml.parent / "self-cgroup")))
    return results


def succeeded(outcome: Outcome) -> dict:
    assert outcome.result.returncode == 0, outcome.result.stderr[-3000:]
    assert not (outcome.ml / "output" / "failure").exists()
    return outcome.description


def failed(outcome: Outcome) -> str:
    assert outcome.result.returncode != 0
    assert outcome.model_files() == []
    return outcome.failure()


SAME = ("feature_names", "categorical_features", "target", "classes", "task", "n_features", "training_rows")


@pytest.mark.parametrize("name", ["parquet file", "hive partitions, FastFile", "parquet by its name, no ContentType"])
def test_a_parquet_channel_trains_the_model_its_csv_trains(outcomes, name):
    csv, parquet = succeeded(outcomes["csv"]), succeeded(outcomes[name])
    assert {key: parquet[key] for key in SAME} == {key: csv[key] for key in SAME}
    assert csv["feature_names"] == ["size", "weight", "color"] and csv["categorical_features"] == ["color"]
    assert parquet["input"] == csv["input"]  # the model's input contract: names, kinds, dtypes


def test_a_parquet_validation_channel_is_scored_as_csvs_is(outcomes):
    assert outcomes["parquet file"].metrics() == outcomes["csv"].metrics()
    assert set(outcomes["parquet file"].metrics()) == {"train", "validation"}


def test_a_parquet_column_of_a_type_the_model_cannot_take_fails_naming_it(outcomes):
    message = failed(outcomes["timestamp column"])
    assert "column 'seen' is of type timestamp" in message and "which the model cannot take" in message


def test_parquet_in_pipe_mode_fails_saying_to_use_file_or_fastfile(outcomes):
    assert "Parquet in Pipe mode" in failed(outcomes["parquet in Pipe mode"])


def test_a_channel_too_large_for_the_containers_memory_fails_before_the_fit_naming_sizes(outcomes):
    outcome = outcomes["csv, 0 MiB free"]
    message = failed(outcome)
    assert "channel 'training' is too large for this container's memory" in message
    assert "the container has 2,048 MiB (cgroup v2 memory.max), 0 MiB of it free" in message
    assert "instance_count > 1" in message
    assert "fit started" not in outcome.result.stdout + outcome.result.stderr


def test_a_channel_that_fits_in_the_containers_memory_trains(outcomes):
    assert succeeded(outcomes["csv, 1 GiB free"])["training_rows"] == len(frame())

