"""Training channels: SageMaker-style CSV (label first, no header), with errors that say what to fix."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from sagemaker_byo import channels
from sagemaker_byo.channels import channel_files, check_content_type, input_data_config, read_channel
from sagemaker_byo.errors import UserError


def channel(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "training"
    root.mkdir()
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.mark.parametrize("data", [
    b"a,1,2\nb,3,4\n",
    b"a,1,2\nb,3,4",  # no trailing newline
    b"a,1,2\r\nb,3,4\r\n",  # CRLF
    b"a,1,2\n\nb,3,4\n\n",  # blank lines
    b"a,1,2\n   \nb,3,4\n",  # a line of spaces
])
def test_labels_come_from_the_first_column_and_features_from_the_rest(tmp_path, data):
    dataset = read_channel("training", channel(tmp_path, {"data.csv": data}))
    np.testing.assert_array_equal(dataset.features, [[1, 2], [3, 4]])
    assert dataset.features.dtype == np.float64
    assert dataset.labels.tolist() == ["a", "b"]
    assert dataset.rows == 2


def test_empty_feature_cell_is_nan(tmp_path):
    dataset = read_channel("training", channel(tmp_path, {"data.csv": b"a,1,\nb,,4\n"}))
    np.testing.assert_array_equal(dataset.features, [[1, np.nan], [np.nan, 4]])


def test_numeric_labels_stay_numbers(tmp_path):
    dataset = read_channel("training", channel(tmp_path, {"data.csv": b"0,1,2\n1,3,4\n"}))
    assert dataset.labels.tolist() == [0, 1]
    assert dataset.labels.dtype.kind == "i"


def test_quoted_label_may_hold_a_comma(tmp_path):
    dataset = read_channel("training", channel(tmp_path, {"data.csv": b'"a,b",1,2\nc,3,4\n'}))
    assert dataset.labels.tolist() == ["a,b", "c"]
    np.testing.assert_array_equal(dataset.features, [[1, 2], [3, 4]])


def test_every_csv_and_gzip_file_is_read_recursively_in_name_order(tmp_path):
    root = channel(tmp_path, {
        "b.csv": b"b,2,2\n",
        "a.csv.gz": gzip.compress(b"a,1,1\n"),
        "sub/c.CSV": b"c,3,3\n",
        "README.txt": b"not data",
        ".hidden.csv": b"h,9,9\n",
        ".cache/x.csv": b"x,9,9\n",
    })
    dataset = read_channel("training", root)
    assert dataset.labels.tolist() == ["a", "b", "c"]
    assert [p.name for p in dataset.files] == ["a.csv.gz", "b.csv", "c.CSV"]


def test_empty_files_are_skipped(tmp_path):
    dataset = read_channel("training", channel(tmp_path, {"a.csv": b"", "b.csv": b"b,1,2\n", "c.csv": b"\n\n"}))
    assert dataset.labels.tolist() == ["b"]
    assert [p.name for p in dataset.files] == ["b.csv"]


def test_the_bundled_iris_channel_reads(tmp_path):
    root = Path(__file__).resolve().parents[2] / "local_test/test_dir/input/data/training"
    dataset = read_channel("training", root)
    assert dataset.features.shape == (dataset.rows, 4)
    assert set(dataset.labels) == {"setosa", "versicolor", "virginica"}


@pytest.mark.parametrize(("files", "message"), [
    ({"d.csv": b"a,1,2\nb,3\n"}, "d.csv: line 2 has 2 fields but line 1 has 3; every row needs the same number"),
    ({"d.csv": b"a,1,2\n\nb,3\n"}, "d.csv: line 3 has 2 fields but line 1 has 3"),  # blank lines count
    ({"d.csv": b"a,1,2\r\nb,3,4,5\r\n"}, "d.csv: line 2 has 4 fields but line 1 has 3"),
    ({"d.csv": b'"a,b",1,2\nc,3\n'}, "d.csv: line 2 has 2 fields but line 1 has 3"),
    ({"d.csv": b"a,1,2\nb,x,4\n"},
     "d.csv: feature column 1 (CSV column 2) holds 'x' on data row 2; features must be numbers"),
    ({"d.csv": b"label,f1,f2\na,1,2\n"}, "feature column 1 (CSV column 2) holds 'f1' on data row 1"),
    ({"d.csv": b"a,1,2\n,3,4\n"}, "d.csv: data row 2 has no label in the first column"),
    ({"d.csv": b"a\nb\n"}, "d.csv has 1 column; it needs the label first, then at least one feature"),
    ({"d.csv": b"a,1,2\n\xff,3,4\n"}, "d.csv is not UTF-8 text"),
    ({"d.csv.gz": b"not gzip at all"}, "d.csv.gz is a truncated or corrupt gzip file"),
    ({"d.csv.gz": gzip.compress(b"a,1,2\n" * 100)[:-10]}, "d.csv.gz is a truncated or corrupt gzip file"),
    ({"a.csv": b"a,1,2\n", "b.csv": b"b,1,2,3\n"}, "b.csv has 4 columns but "),
    ({"a.csv": b"", "b.csv": b"  \n"}, "channel 'training' has no data rows: every file under"),
])
def test_bad_channel_data_is_a_user_error_with_a_specific_reason(tmp_path, files, message):
    with pytest.raises(UserError) as raised:
        read_channel("training", channel(tmp_path, files))
    assert message in str(raised.value)


@pytest.mark.parametrize("cell", [b"inf", b"1e999", b"-Infinity"])
def test_infinite_feature_is_a_user_error(tmp_path, cell):
    with pytest.raises(UserError, match="data row 2"):
        read_channel("training", channel(tmp_path, {"d.csv": b"a,1,2\nb," + cell + b",4\n"}))


def test_missing_channel_folder_is_a_user_error_saying_how_to_fix_it(tmp_path):
    with pytest.raises(UserError) as raised:
        read_channel("validation", tmp_path / "validation")
    assert str(raised.value) == (
        f"channel 'validation' is missing: no folder {tmp_path / 'validation'}; give the job a "
        f"'validation' channel with CSV files in its InputDataConfig"
    )


def test_channel_without_csv_files_lists_what_it_found(tmp_path):
    root = channel(tmp_path, {"data.parquet": b"PAR1", "notes.txt": b"x"})
    with pytest.raises(UserError, match=r"has no \.csv or \.csv\.gz files .*\(found: data\.parquet, notes\.txt\)"):
        channel_files("training", root)


def test_empty_channel_folder_says_it_found_nothing(tmp_path):
    with pytest.raises(UserError, match=r"\(found: nothing\)"):
        channel_files("training", channel(tmp_path, {}))


@pytest.mark.parametrize("content_type", [None, "text/csv", "text/csv; label_size=1", "TEXT/CSV"])
def test_csv_channel_content_type_is_accepted(content_type):
    config = {"training": {"ContentType": content_type}} if content_type else {"training": {}}
    assert check_content_type("training", config) is None
    assert check_content_type("training", {}) is None


@pytest.mark.parametrize("content_type", ["application/x-recordio-protobuf", "application/x-parquet"])
def test_other_channel_content_type_is_a_user_error(content_type):
    expected = f"channel 'training' has ContentType '{content_type}'; this algorithm reads text/csv"
    with pytest.raises(UserError, match=expected):
        check_content_type("training", {"training": {"ContentType": content_type}})


def test_input_data_config_is_read_as_a_mapping(tmp_path):
    path = tmp_path / "inputdataconfig.json"
    path.write_text(json.dumps({"training": {"ContentType": "text/csv"}}))
    assert input_data_config(path) == {"training": {"ContentType": "text/csv"}}
    assert input_data_config(tmp_path / "absent.json") == {}


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "inputdataconfig.json is not valid JSON"),
    ('["training"]', "inputdataconfig.json must hold a JSON object of channel names"),
])
def test_bad_input_data_config_is_a_user_error(tmp_path, text, message):
    path = tmp_path / "inputdataconfig.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        input_data_config(path)


def test_only_csv_suffixes_are_read():
    assert channels.SUFFIXES == (".csv", ".csv.gz")
