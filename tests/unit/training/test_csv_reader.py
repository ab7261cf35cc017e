"""The CSV reader reads with pyarrow where it can and with pandas where pyarrow refuses the file;
either way the table is the one pandas gives (numbers float32, the target its own type, text as
text), and every check of the reader holds past the first block that decides the column types."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sagemaker_byo.errors import UserError
from sagemaker_byo.training import channels
from sagemaker_byo.training.channels import read_table

LONG = 3 * channels.SAMPLE_ROWS  # rows past the first block


def read(tmp_path: Path, data: bytes, name: str = "data.csv", **options) -> pd.DataFrame:
    root = tmp_path / "training"
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return read_table("training", root, **options).frame


def by_pandas(data: bytes, header: bool = False, target=None) -> pd.DataFrame:
    """The table the pandas path alone reads from `data`."""
    frame = channels._parse_pandas(data, "memory", header, target, True)
    return frame.set_axis(pd.RangeIndex(frame.shape[1]), axis=1) if not header else frame


def rows(*lines: str) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


@pytest.mark.parametrize(("data", "header"), [
    (rows("a,1,2", "b,3,4"), False),
    (rows("y,x,t", "1,2.5,007", "0,,abc", "1,NA,null"), True),  # 007 stays text; NA and null are missing
    (rows('"a,b",1,2', '"say ""hi""",3,4'), False),
    (rows('"two\nlines",1,2', "c,3,4"), False),  # a quoted newline
    (rows("123456789,1.1", "2,3.3"), False),  # the target keeps its precision
    (b"a,1,2\r\nb,3,4\r\n\r\n", False),
    (rows(*[f"{i},{i / 7:.5f},w{i % 3}" for i in range(LONG)]), False),
])
def test_the_table_read_is_the_one_pandas_reads(tmp_path, data, header):
    expected = by_pandas(data, header)
    for name in ("data.csv", "data.csv.gz"):
        pd.testing.assert_frame_equal(read(tmp_path, data, name, header=header), expected, check_dtype=True)
        (tmp_path / "training" / name).unlink()


def test_numbers_are_float32_and_the_target_float64_or_integer(tmp_path):
    frame = read(tmp_path, rows("1,0.5,x", "2,1.5,y"))
    assert list(frame.dtypes.astype(str)) == ["int64", "float32", "str"]
    frame = read(tmp_path / "b", rows("1.5,0.5", "2.5,1.5"))
    assert list(frame.dtypes.astype(str)) == ["float64", "float32"]


def test_a_column_of_numbers_that_turns_to_text_past_the_first_block_is_text(tmp_path):
    lines = [f"{i % 2},{i}" for i in range(LONG)] + ["1,many"]
    frame = read(tmp_path, rows(*lines))
    assert frame[1].iloc[-1] == "many" and frame[1].iloc[0] == "0"
    assert not pd.api.types.is_numeric_dtype(frame[1].dtype)


def test_a_ragged_row_past_the_first_block_is_named_by_its_line(tmp_path):
    lines = [f"{i % 2},{i},{i}" for i in range(LONG)]
    lines[LONG - 10] = "1,2"
    with pytest.raises(UserError, match=f"data.csv: line {LONG - 9} has 2 fields but line 1 has 3"):
        read(tmp_path, rows(*lines))


def test_bytes_that_are_not_utf8_past_the_first_block_are_refused(tmp_path):
    data = rows(*[f"{i % 2},w{i}" for i in range(LONG)]) + b"1,\xff\n"
    with pytest.raises(UserError, match="data.csv is not UTF-8 text"):
        read(tmp_path, data)


def test_a_header_naming_a_column_twice_after_stripping_is_refused(tmp_path):
    with pytest.raises(UserError, match="the header names 'a' twice"):
        read(tmp_path, rows("y,a, a", "1,2,3"), header=True)


def test_a_header_only_file_has_no_data_rows(tmp_path):
    with pytest.raises(UserError, match="has no data rows"):
        read(tmp_path, rows("y,a"), header=True)


def test_several_files_are_joined_in_order_with_text_and_numbers_kept(tmp_path):
    root = tmp_path / "training"
    root.mkdir()
    (root / "a.csv").write_bytes(rows("1,0.5,x"))
    (root / "b.csv.gz").write_bytes(gzip.compress(rows("0,1.5,y")))
    (root / "c.csv").write_bytes(rows("1,2.5,7"))  # its text column is numbers only: pandas' path joins them
    table = read_table("training", root)
    assert table.frame[0].tolist() == [1, 0, 1]
    assert table.frame[1].dtype == np.float32
    assert [str(v) for v in table.frame[2]] == ["x", "y", "7.0"]
    assert table.locate(2) == f"{root / 'c.csv'}, data row 1"
