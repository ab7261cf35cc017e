"""Parquet in the real image: a channel of Hive-partitioned Parquet files (as Athena, Spark and
Feature Store's offline store write them) trains with `docker run IMAGE train`, and the model it
saves, served by `docker run IMAGE serve`, answers a Parquet body row for row as it answers the
same rows sent as CSV."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from test_image import Container, containers, docker, image, wait_ready  # noqa: F401

from support import copy_test_dir, free_port


def partitioned_job(base, rows: int = 400):
    """The tests' job with its training channel replaced by Hive partitions of a fixture table:
    a numeric target, two numbers, a category; the partition value (`region`) becomes a column."""
    rng = np.random.default_rng(3)
    size, weight = rng.normal(size=rows).round(3), rng.normal(size=rows).round(3)
    colour = rng.choice(["red", "green", "blue"], rows)
    region = rng.choice(["north", "south"], rows)
    label = np.where((colour == "red") | (size > 0.4) | (region == "south") & (weight > 1), "yes", "no")
    frame = pd.DataFrame({"label": label, "size": size, "weight": weight,
                          "colour": pd.Categorical(colour)})
    training = base / "input" / "data" / "training"
    shutil.rmtree(training)
    shutil.rmtree(base / "input" / "data" / "validation", ignore_errors=True)
    for name in ("north", "south"):
        part = training / f"region={name}"
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame[region == name], preserve_index=False), part / "part-0.parquet")
    config = base / "input" / "config"
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {
        "ContentType": "application/x-parquet", "TrainingInputMode": "File"}}))
    (config / "hyperparameters.json").write_text(json.dumps(
        {"algorithm": "random_forest", "n_estimators": "20", "target": "label"}))
    return frame.assign(region=region)


def test_hive_partitioned_parquet_trains_in_the_image_and_a_parquet_body_answers_as_csv(
        image, containers, tmp_path):  # noqa: F811 - the fixtures
    base = copy_test_dir(tmp_path / "ml")
    table = partitioned_job(base)
    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, "train", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    description = json.loads((base / "model" / "model.json").read_text())
    assert sorted(description["feature_names"]) == ["colour", "region", "size", "weight"]
    assert description["task"] == "classification" and sorted(description["classes"]) == ["no", "yes"]

    port = free_port()
    container = containers(image, "serve", base, env={"SAGEMAKER_BIND_TO_PORT": port})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)
    rows = table.drop(columns="label").head(50)[description["feature_names"]]
    rows = rows.assign(colour=rows["colour"].astype(str))
    body = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), body)
    parquet = requests.post(f"{url}/invocations", data=body.getvalue(),
                            headers={"Content-Type": "application/x-parquet"}, timeout=30)
    assert parquet.status_code == 200, parquet.text
    csv = requests.post(f"{url}/invocations", data=rows.to_csv(index=False, header=False),
                        headers={"Content-Type": "text/csv"}, timeout=30)
    assert csv.status_code == 200, csv.text
    assert parquet.text.splitlines() == csv.text.splitlines()
    assert len(parquet.text.splitlines()) == 50
