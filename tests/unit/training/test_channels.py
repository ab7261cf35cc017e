"""Training channels: CSV files (or a Pipe-mode FIFO) read into a table, the target split off, and
the features checked, with errors that name the file and line and say what to fix."""

from __future__ import annotations

import gzip
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sagemaker_byo.errors import UserError
from sagemaker_byo.training import channels
from sagemaker_byo.training.channels import (
    Table,
    channel_files,
    check_content_type,
    check_features,
    input_mode,
    read_table,
    split_target,
)
from support import JOB

IRIS_CHANNEL = JOB / "input" / "data" / "training"


def channel(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "training"
    root.mkdir()
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read(tmp_path: Path, data: bytes, **options) -> Table:
    return read_table("training", channel(tmp_path, {"data.csv": data}), **options)


def table(columns: dict) -> Table:
    """A table as read from one file, memory.csv."""
    return Table(pd.DataFrame(columns), ["memory.csv"], [0])


def cells(frame: pd.DataFrame) -> list[list]:
    """The frame's values as lists, NaN as None, so tables can compare them with ==."""
    return [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in frame.values.tolist()]


# -- read_table -----------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"a,1,2\nb,3,4\n",
    b"a,1,2\nb,3,4",  # no trailing newline
    b"a,1,2\r\nb,3,4\r\n",  # CRLF
    b"a,1,2\n\nb,3,4\n\n",  # blank lines
])
def test_every_row_is_read_with_text_kept_and_numbers_as_float32(tmp_path, data):
    result = read(tmp_path, data)
    assert result.rows == 2
    assert cells(result.frame) == [["a", 1.0, 2.0], ["b", 3.0, 4.0]]
    assert not pd.api.types.is_numeric_dtype(result.frame[0].dtype)
    assert (result.frame.dtypes[1:] == np.float32).all()
    assert result.sources == [str(tmp_path / "training" / "data.csv")]


def test_the_target_column_keeps_its_precision(tmp_path):
    result = read(tmp_path, b"123456789,1.1\n2,3.3\n")
    assert result.frame[0].tolist() == [123456789, 2]  # float32 would round it to 123456792
    assert result.frame[1].dtype == np.float32


def test_empty_cells_are_missing_values(tmp_path):
    assert cells(read(tmp_path, b"a,1,\nb,,4\n").frame) == [["a", 1.0, None], ["b", None, 4.0]]


def test_a_quoted_cell_may_hold_a_comma(tmp_path):
    assert cells(read(tmp_path, b'"a,b",1,2\nc,3,4\n').frame) == [["a,b", 1.0, 2.0], ["c", 3.0, 4.0]]


def test_a_header_names_the_columns_when_asked_for(tmp_path):
    result = read(tmp_path, b"species, length ,colour\na,1,red\nb,2,blue\n", header=True)
    assert list(result.frame.columns) == ["species", "length", "colour"]  # names are stripped
    assert cells(result.frame) == [["a", 1.0, "red"], ["b", 2.0, "blue"]]


def test_every_csv_and_gzip_file_is_read_recursively_in_name_order(tmp_path):
    root = channel(tmp_path, {
        "b.csv": b"b,2,2\n",
        "a.csv.gz": gzip.compress(b"a,1,1\n"),
        "sub/c.CSV": b"c,3,3\n",
        "README.txt": b"not data",
        ".hidden.csv": b"h,9,9\n",
        ".cache/x.csv": b"x,9,9\n",
    })
    result = read_table("training", root)
    assert result.frame[0].tolist() == ["a", "b", "c"]
    assert [Path(p).name for p in result.sources] == ["a.csv.gz", "b.csv", "c.CSV"]


def test_empty_files_are_skipped(tmp_path):
    result = read_table("training", channel(tmp_path, {"a.csv": b"", "b.csv": b"b,1,2\n", "c.csv": b"\n\n"}))
    assert result.frame[0].tolist() == ["b"]
    assert [Path(p).name for p in result.sources] == ["b.csv"]


def test_an_iris_channel_reads(tmp_path):
    result = read_table("training", IRIS_CHANNEL)
    assert result.frame.shape == (result.rows, 5)
    assert set(result.frame[0]) == {"setosa", "versicolor", "virginica"}


@pytest.mark.parametrize(("files", "message"), [
    ({"d.csv": b"a,1,2\nb,3\n"}, "d.csv: line 2 has 2 fields but line 1 has 3; every row needs the same number"),
    ({"d.csv": b"a,1,2\n\nb,3\n"}, "d.csv: line 3 has 2 fields but line 1 has 3"),  # blank lines count
    ({"d.csv": b"\na,1,2\nb,3,4,5\n"}, "d.csv: line 3 has 4 fields but line 2 has 3"),  # a long row
    ({"d.csv": b"a,1,2\r\nb,3,4,5\r\n"}, "d.csv: line 2 has 4 fields but line 1 has 3"),
    ({"d.csv": b"a,1,2\n\xff,3,4\n"}, "d.csv is not UTF-8 text"),
    ({"d.csv.gz": b"not gzip at all"}, "d.csv.gz is a truncated or corrupt gzip file"),
    ({"d.csv.gz": gzip.compress(b"a,1,2\n" * 100)[:-10]}, "d.csv.gz is a truncated or corrupt gzip file"),
    ({"a.csv": b"a,1,2\n", "b.csv": b"b,1,2,3\n"}, "b.csv has 4 columns but "),
    ({"a.csv": b"", "b.csv": b"  \n"}, "channel 'training' has no data rows: every file under"),
])
def test_bad_channel_data_is_a_user_error_naming_the_file(tmp_path, files, message):
    with pytest.raises(UserError) as raised:
        read_table("training", channel(tmp_path, files))
    assert message in str(raised.value)


def test_a_short_row_is_refused_even_when_a_quoted_comma_evens_out_the_comma_count(tmp_path):
    with pytest.raises(UserError, match="d.csv: line 2 has 2 fields but line 1 has 3"):
        read_table("training", channel(tmp_path, {"d.csv": b'"a,b",1,2\nc,3\n'}))


def test_files_with_another_header_are_a_user_error(tmp_path):
    files = {"a.csv": b"y,a\n1,2\n", "b.csv": b"y,b\n1,2\n"}
    with pytest.raises(UserError, match="b.csv has another header than "):
        read_table("training", channel(tmp_path, files), header=True)


def test_a_header_naming_a_column_twice_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="d.csv: the header names 'a' twice"):
        read_table("training", channel(tmp_path, {"d.csv": b"y,a,a\n1,2,3\n"}), header=True)


def test_missing_channel_folder_is_a_user_error_saying_how_to_fix_it(tmp_path):
    with pytest.raises(UserError) as raised:
        read_table("validation", tmp_path / "validation")
    assert str(raised.value) == (
        f"channel 'validation' is missing: no folder {tmp_path / 'validation'}; give the job a "
        f"'validation' channel with CSV or Parquet files in its InputDataConfig"
    )


# -- Pipe mode ------------------------------------------------------------------------------------

def piped(tmp_path: Path, data: bytes, **options) -> Table:
    """read_table in Pipe mode, with a thread writing `data` into the FIFO <data>/training_0."""
    fifo = tmp_path / "training_0"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        return read_table("training", tmp_path / "training", mode="Pipe", **options)
    finally:
        writer.join(timeout=10)
        assert not writer.is_alive()


@pytest.mark.parametrize("data", [b"a,1,2\nb,3,4\n", gzip.compress(b"a,1,2\nb,3,4\n")])
def test_pipe_mode_reads_the_channels_fifo(tmp_path, data):
    result = piped(tmp_path, data)
    assert cells(result.frame) == [["a", 1.0, 2.0], ["b", 3.0, 4.0]]
    assert result.sources == [str(tmp_path / "training_0")]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "channel 'training' has no data rows: its pipe"),
    (b"a,1,2\nb,3\n", "line 2 has 2 fields but line 1 has 3"),
    (gzip.compress(b"a,1,2\n" * 100)[:-10], "the piped data is a truncated or corrupt gzip"),
])
def test_bad_piped_data_is_a_user_error(tmp_path, data, message):
    with pytest.raises(UserError, match=message):
        piped(tmp_path, data)


@pytest.mark.parametrize(("config", "mode"), [
    ({}, "File"),
    ({"training": {}}, "File"),
    ({"training": {"TrainingInputMode": "Pipe"}}, "Pipe"),
    ({"training": {"TrainingInputMode": "FastFile"}}, "FastFile"),
])
def test_input_mode_comes_from_the_channel_configuration(config, mode):
    assert input_mode("training", config) == mode


# -- split_target ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "name", "features"), [
    (None, "y", ["a", "b"]),  # the first column by default
    ("0", "y", ["a", "b"]),
    ("2", "b", ["y", "a"]),
    ("-1", "b", ["y", "a"]),
    ("a", "a", ["y", "b"]),  # a header name
])
def test_the_target_is_a_header_name_or_a_zero_based_index(target, name, features):
    x, y = split_target(table({"y": ["p", "q"], "a": [1.0, 2.0], "b": [3.0, 4.0]}), target, "training")
    assert y.name == name
    assert list(x.columns) == features


@pytest.mark.parametrize(("columns", "target", "message"), [
    ({"y": ["p", None], "a": [1.0, 2.0]}, None, "memory.csv, data row 2 has no value in the target column ('y')"),
    ({"y": [1.0, 2.0], "a": [np.nan, 2.0]}, "a", "memory.csv, data row 1 has no value in the target column ('a')"),
    ({0: [1.0, np.nan], 1: [1.0, 2.0]}, None,
     "memory.csv, data row 2 has no value in the target column (CSV column 1)"),
    ({"y": ["p", "q"], "a": [1.0, 2.0]}, "colour", "target column 'colour' is not in channel 'training'; its columns "
                                                    "are 'y', 'a'"),
    ({0: ["p", "q"], 1: [1.0, 2.0]}, "colour", "(set header=true to read names)"),
    ({"y": ["p", "q"], "a": [1.0, 2.0]}, "5", "target column index 5 is outside channel 'training' with 2 columns"),
    ({"y": ["p", "q"]}, None, "memory.csv has 1 column; it needs a target and at least one feature"),
])
def test_a_target_that_cannot_be_used_is_a_user_error(columns, target, message):
    with pytest.raises(UserError) as raised:
        split_target(table(columns), target, "training")
    assert message in str(raised.value)


# -- check_features -------------------------------------------------------------------------------

@pytest.mark.parametrize("columns", [
    {"a": np.array([1.0, np.nan, 3.0], dtype=np.float32)},  # missing values are fine
    {"colour": ["red", "blue", None]},  # all text: a category
    {"colour": ["red", "blue", "1"]},  # mostly text: a category too
    {"a": np.array([3.0e38, -3.0e38, 0.0])},
])
def test_finite_numbers_and_text_columns_pass(columns):
    check_features(pd.DataFrame(columns), table(columns))


INFINITE = "feature 'f' is infinite or too large (over 3.4e38); features must be finite numbers"


@pytest.mark.parametrize(("column", "message"), [
    (np.array([1.0, np.inf], dtype=np.float32), f"memory.csv, data row 2: {INFINITE}"),
    (np.array([-np.inf, 1.0]), f"memory.csv, data row 1: {INFINITE}"),
    (np.array([1.0, 2.0, 1e39]), f"memory.csv, data row 3: {INFINITE}"),
    ([str(i) for i in range(19)] + ["x"], "memory.csv, data row 20: feature 'f' holds numbers but 'x' there; fix "
                                          "the value, or make the column all text to use it as a category"),
])
def test_bad_feature_values_are_a_user_error_naming_file_and_row(column, message):
    columns = {"g": np.zeros(len(column)), "f": column}
    with pytest.raises(UserError) as raised:
        check_features(pd.DataFrame(columns), table(columns))
    assert str(raised.value) == message


@pytest.mark.parametrize("cell", [b"inf", b"1e999", b"-inf", b"1e39"])
def test_an_infinite_cell_read_from_a_file_is_a_user_error_naming_file_and_row(tmp_path, cell):
    result = read(tmp_path, b"a,1,2\nb," + cell + b",4\n")
    x, _ = split_target(result, None, "training")
    with pytest.raises(UserError) as raised:
        check_features(x, result)
    assert str(raised.value) == f"{tmp_path / 'training' / 'data.csv'}, data row 2: feature 1 is infinite or too " \
                                f"large (over 3.4e38); features must be finite numbers"


def test_a_bad_row_is_traced_back_to_its_own_file(tmp_path):
    root = channel(tmp_path, {"a.csv": b"a,1\nb,2\n", "b.csv": b"c,3\n", "c.csv": b"d,4\ne,\n"})
    result = read_table("training", root)
    assert result.locate(4) == f"{root / 'c.csv'}, data row 2"
    assert result.locate(2) == f"{root / 'b.csv'}, data row 1"
    with pytest.raises(UserError, match=r"c\.csv, data row 2 has no value in the target column \(CSV column 2\)"):
        split_target(result, "1", "training")


# -- channel files and configuration --------------------------------------------------------------

def test_channel_without_csv_or_parquet_files_lists_what_it_found(tmp_path):
    root = channel(tmp_path, {"data.json": b"{}", "notes.txt": b"x"})
    found = r"has no \.csv, \.csv\.gz or Parquet files .*\(found: data\.json, notes\.txt\)"
    with pytest.raises(UserError, match=found):
        channel_files("training", root)


def test_empty_channel_folder_says_it_found_nothing(tmp_path):
    with pytest.raises(UserError, match=r"\(found: nothing\)"):
        channel_files("training", channel(tmp_path, {}))


@pytest.mark.parametrize("content_type", [None, "text/csv", "TEXT/CSV", "text/csv; charset=utf-8"])
def test_csv_channel_content_type_is_accepted_and_says_no_label_size(content_type):
    config = {"training": {"ContentType": content_type}} if content_type else {"training": {}}
    assert check_content_type("training", config) is None
    assert check_content_type("training", {}) is None


@pytest.mark.parametrize(("content_type", "size"), [
    ("text/csv;label_size=0", 0), ("text/csv; label_size=0", 0), ("Text/CSV; charset=utf-8; Label_Size=0", 0),
    ('text/csv; label_size="0"', 0), ("text/csv; label_size=1", 1), ("text/csv;label_size=1 ", 1),
    ("text/csv;label_size=2", 2), ("text/csv; label_size=12", 12),
])
def test_content_type_label_size_parameter_is_parsed(content_type, size):
    assert check_content_type("training", {"training": {"ContentType": content_type}}) == size


@pytest.mark.parametrize("value", ["-1", "one", "1.5", ""])
def test_a_label_size_that_is_not_a_count_of_columns_is_a_user_error(value):
    with pytest.raises(UserError, match=f"label_size must be 0 \\(features only\\) or the number of target "
                                        f"columns at the start of each row \\(1 or more\\), got {value}$"):
        check_content_type("training", {"training": {"ContentType": f"text/csv; label_size={value}"}})


@pytest.mark.parametrize("content_type", ["application/x-recordio-protobuf", "application/json"])
def test_other_channel_content_type_is_a_user_error(content_type):
    expected = (f"channel 'training' has ContentType '{content_type}'; this algorithm reads text/csv, "
                f"application/x-parquet")
    with pytest.raises(UserError, match=expected):
        check_content_type("training", {"training": {"ContentType": content_type}})


def test_only_csv_and_parquet_suffixes_are_read():
    assert channels.SUFFIXES == (".csv", ".csv.gz", ".parquet", ".parq")
