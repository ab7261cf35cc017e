"""Parquet channels: a single file, a folder of parts, Hive partitions (as Feature Store's offline
store, Athena and Spark write them) read into the same table CSV gives; column types carried
through, and the types, schemas and modes it cannot take refused naming the column or files."""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sagemaker_byo.errors import UserError
from sagemaker_byo.training.channels import (
    channel_files,
    check_content_type,
    names_columns,
    read_table,
    split_target,
)

COLUMNS = {"label": ["a", "b", "a"], "size": [1.5, 2.5, 3.5], "color": ["red", "blue", None], "count": [1, 2, 3]}


def write(root: Path, name: str, table: pa.Table | dict) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table if isinstance(table, pa.Table) else pa.table(table), path)
    return path


def csv_table(tmp_path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    root = tmp_path / "csv"
    root.mkdir()
    frame.to_csv(root / "data.csv", index=False)
    return read_table("training", root, header=True).frame


def test_a_parquet_file_reads_as_the_same_csv_table_reads(tmp_path):
    frame = pd.DataFrame(COLUMNS)
    root = tmp_path / "training"
    write(root, "data.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    parquet = read_table("training", root).frame
    pd.testing.assert_frame_equal(parquet, csv_table(tmp_path, frame))
    assert list(parquet.columns) == ["label", "size", "color", "count"]
    assert (parquet.dtypes[["size", "count"]] == np.float32).all()
    assert parquet["color"].tolist()[:2] == ["red", "blue"] and pd.isna(parquet["color"][2])


def test_parts_of_a_folder_are_read_in_name_order_and_rows_traced_to_their_file(tmp_path):
    root = tmp_path / "training"
    write(root, "part-1.parquet", {"y": [3.0], "x": [30.0]})
    write(root, "part-0.parquet", {"y": [1.0, 2.0], "x": [10.0, None]})
    (root / "_SUCCESS").write_bytes(b"")  # Spark's marker: ignored
    table = read_table("training", root)
    assert table.frame["x"].tolist()[::2] == [10.0, 30.0]
    assert table.locate(2) == f"{root / 'part-1.parquet'}, data row 1"
    with pytest.raises(UserError, match=r"part-0\.parquet, data row 2 has no value in the target column \('x'\)"):
        split_target(table, "x", "training")


def test_a_parquet_file_without_a_parquet_name_is_found_by_its_magic_bytes(tmp_path):
    root = tmp_path / "training"
    write(root, "20261207_000000_00001_abcde", {"y": [1, 0], "x": [1.0, 2.0]})  # as Athena names them
    assert [p.name for p in channel_files("training", root)] == ["20261207_000000_00001_abcde"]
    assert read_table("training", root).rows == 2


def test_hive_partition_folders_become_columns_typed_as_pyarrow_types_them(tmp_path):
    root = tmp_path / "training"
    write(root, "year=2025/region=eu/part-0.parquet", {"y": [0, 1], "x": [1.0, 2.0]})
    write(root, "year=2026/region=us/part-0.parquet", {"y": [1], "x": [3.0]})
    frame = read_table("training", root).frame
    assert list(frame.columns) == ["y", "x", "year", "region"]
    assert frame["year"].tolist() == [2025, 2025, 2026] and frame["year"].dtype == np.float32
    assert frame["region"].tolist() == ["eu", "eu", "us"]
    assert not pd.api.types.is_numeric_dtype(frame["region"].dtype)


def test_a_hosts_share_of_partitioned_files_keeps_its_partition_columns(tmp_path):
    root = tmp_path / "training"
    files = [write(root, f"day={d}/part-0.parquet", {"y": [d], "x": [float(d)]}) for d in (1, 2, 3)]
    frame = read_table("training", root, files=files[1:]).frame
    assert frame["day"].tolist() == [2, 3]


def test_booleans_are_numbers_0_and_1_and_nullable_integers_floats_with_missing_values(tmp_path):
    root = tmp_path / "training"
    write(root, "data.parquet", pa.table({
        "y": pa.array([True, False, True]),
        "flag": pa.array([True, None, False]),
        "count": pa.array([1, None, 3], pa.int64()),
        "small": pa.array([1, 2, 3], pa.int8()),
    }))
    frame = read_table("training", root).frame
    assert frame["y"].tolist() == [True, False, True]  # a target keeps its type, as CSV's True/False does
    assert frame["flag"].dtype == np.float32 and frame["count"].dtype == np.float32
    assert [None if np.isnan(v) else v for v in frame["flag"]] == [1.0, None, 0.0]
    assert [None if np.isnan(v) else v for v in frame["count"]] == [1.0, None, 3.0]
    assert frame["small"].tolist() == [1.0, 2.0, 3.0]


def test_an_integer_target_keeps_its_precision_and_a_missing_one_is_named(tmp_path):
    root = tmp_path / "training"
    write(root, "data.parquet", {"y": pa.array([123456789, None], pa.int64()), "x": [1.0, 2.0]})
    table = read_table("training", root)
    assert table.frame["y"][0] == 123456789
    with pytest.raises(UserError, match=r"data\.parquet, data row 2 has no value in the target column \('y'\)"):
        split_target(table, None, "training")


def test_categoricals_are_text_as_csv_gives_it(tmp_path):
    root = tmp_path / "training"
    colors = pa.array(["red", "blue", "red"]).dictionary_encode()
    write(root, "data.parquet", pa.table({"y": [1, 0, 1], "color": colors}))
    frame = read_table("training", root).frame
    assert frame["color"].tolist() == ["red", "blue", "red"]
    assert frame["color"].dtype == csv_table(tmp_path, pd.DataFrame({"y": [1], "color": ["red"]}))["color"].dtype


def test_column_names_come_from_the_schema_whatever_header_says(tmp_path):
    root = tmp_path / "training"
    write(root, "data.parquet", {"y": [1, 0], "x": [1.0, 2.0], "z": [3.0, 4.0]})
    for header in (True, False):
        table = read_table("training", root, header=header, target="2")
        assert list(table.frame.columns) == ["y", "x", "z"]
        assert table.frame["z"].dtype == np.float64  # the target, by index
        features, y = split_target(table, ["z", "0"], "training")
        assert list(features.columns) == ["x"] and list(y.columns) == ["z", "y"]


def test_features_only_data_has_every_number_as_float32(tmp_path):
    root = tmp_path / "training"
    write(root, "data.parquet", {"a": [1, 2], "b": [1.0, 2.0]})
    assert (read_table("training", root, labelled=False).frame.dtypes == np.float32).all()


@pytest.mark.parametrize(("column", "kind"), [
    (pa.array([datetime.datetime(2026, 1, 1), None]), "timestamp[us]"),
    (pa.array([datetime.date(2026, 1, 1), None]), "date32[day]"),
    (pa.array([[1, 2], [3]]), "list<element: int64>"),
    (pa.array([{"a": 1}, {"a": 2}]), "struct<a: int64>"),
    (pa.array([b"\x00", b"\x01"]), "binary"),
])
def test_a_column_type_the_model_cannot_take_is_a_user_error_naming_the_column_and_type(tmp_path, column, kind):
    root = tmp_path / "training"
    write(root, "data.parquet", pa.table({"y": [1, 0], "when": column}))
    with pytest.raises(UserError) as raised:
        read_table("training", root)
    assert f"column 'when' is of type {kind}, which the model cannot take" in str(raised.value)


def test_files_with_different_schemas_are_a_user_error_naming_both(tmp_path):
    root = tmp_path / "training"
    write(root, "a.parquet", {"y": [1], "x": [1.0]})
    write(root, "b.parquet", {"y": [1], "x": ["one"]})
    with pytest.raises(UserError) as raised:
        read_table("training", root)
    message = str(raised.value)
    assert f"{root / 'b.parquet'} and {root / 'a.parquet'} have different schemas (x: double against string)" in message


def test_csv_and_parquet_in_one_channel_are_a_user_error(tmp_path):
    root = tmp_path / "training"
    write(root, "a.parquet", {"y": [1], "x": [1.0]})
    (root / "b.csv").write_bytes(b"1,2\n")
    with pytest.raises(UserError, match=r"mixes CSV and Parquet files \(b\.csv and a\.parquet\); a channel holds one"):
        read_table("training", root)


def test_a_corrupt_parquet_file_is_a_user_error_naming_it(tmp_path):
    root = tmp_path / "training"
    root.mkdir()
    (root / "data.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match=r"data\.parquet is not a readable Parquet file"):
        read_table("training", root)


@pytest.mark.parametrize(("content_type", "size"), [
    ("application/x-parquet", None), ("application/x-parquet; label_size=0", 0), ("Application/X-Parquet", None),
])
def test_the_parquet_content_type_is_accepted_with_its_label_size(content_type, size):
    assert check_content_type("training", {"training": {"ContentType": content_type}}) == size


def test_parquet_in_pipe_mode_is_refused_by_its_content_type_and_by_its_bytes(tmp_path):
    config = {"training": {"ContentType": "application/x-parquet", "TrainingInputMode": "Pipe"}}
    with pytest.raises(UserError, match="is Parquet in Pipe mode.*set the channel's TrainingInputMode to File"):
        check_content_type("training", config)
    data = (write(tmp_path / "files", "d.parquet", {"y": [1], "x": [1.0]})).read_bytes()
    fifo = tmp_path / "training_0"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True)
    writer.start()
    with pytest.raises(UserError, match="is Parquet in Pipe mode"):
        read_table("training", tmp_path / "training", mode="Pipe")
    writer.join(timeout=10)


@pytest.mark.parametrize(("config", "files", "named"), [
    ({"training": {"ContentType": "application/x-parquet"}}, {}, True),
    ({}, {"a.parquet": True}, True),
    ({"training": {"ContentType": "text/csv"}}, {"a.csv": False}, False),
    ({}, {}, False),
])
def test_a_parquet_channel_names_its_columns_whatever_header_says(tmp_path, config, files, named):
    root = tmp_path / "training"
    root.mkdir()
    for name, parquet in files.items():
        if parquet:
            write(root, name, {"y": [1]})
        else:
            (root / name).write_bytes(b"1,2\n")
    assert names_columns("training", root, config) is named
