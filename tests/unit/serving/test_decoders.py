"""Request bodies to rows: float64, or object where some cells are text; a malformed body is a 400
that names the row and column. Every line is a row: a blank line or a line of empty cells is a row
of missing values. Whether text or infinity is acceptable is the model contract's call
(`contract.conform`), so those cases run decode and conform together.

Bodies over VECTORISED_CSV_BYTES of short plain decimals take a vectorised reader; other bodies up
to SMALL_CSV_BYTES a pure-Python path, larger ones pandas' parser. Each case runs through a small
and a large body (`size`), and the two must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from sagemaker_byo.contract import Column, InputContract, conform
from sagemaker_byo.errors import BadRequest, UnsupportedMediaType
from sagemaker_byo.serving import decoders
from sagemaker_byo.serving.decoders import SMALL_CSV_BYTES, decode, decode_csv

SIZES = ["small", "large"]
NAN = np.nan


def sized(body: bytes, size: str) -> tuple[bytes, int]:
    """The body, or the body repeated past SMALL_CSV_BYTES; and how many times it was repeated."""
    if size == "small":
        assert len(body) <= SMALL_CSV_BYTES
        return body, 1
    if not body.endswith((b"\n", b"\r")):
        body += b"\n"
    times = SMALL_CSV_BYTES // len(body) + 2
    large = body * times
    assert len(large) > SMALL_CSV_BYTES
    return large, times


def numeric_contract(width: int) -> InputContract:
    """A measured model of `width` numeric features without names that takes missing values but
    not infinity (a tree)."""
    return InputContract(tuple(Column(f"column_{j + 2}", False, True) for j in range(width)),
                         frame=False, accepts_infinite=False, measured=True)


def conform_message(data: bytes, content_type: str = "text/csv") -> str:
    """The 400 that decoding and then conforming to a numeric model gives."""
    decoded = decode(data, content_type)
    with pytest.raises(BadRequest) as raised:
        conform(decoded, numeric_contract(decoded.shape[1]))
    assert raised.value.status == 400
    return raised.value.message


def decode_sized(body: bytes, size: str, content_type: str = "text/csv") -> np.ndarray:
    data, times = sized(body, size)
    array = decode(data, content_type)
    assert len(array) % times == 0
    return array[: len(array) // times]  # the rows of one copy of the body


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "expected"), [
    (b"1,2\n3,4\n", [[1, 2], [3, 4]]),
    (b"1,2\n3,4", [[1, 2], [3, 4]]),  # no trailing newline
    (b"1,2\r\n3,4\r\n", [[1, 2], [3, 4]]),  # CRLF
    (b"1,2\r3,4\r", [[1, 2], [3, 4]]),  # old Mac line ends
    (b"1,2\n\n3,4\n\n", [[1, 2], [NAN, NAN], [3, 4], [NAN, NAN]]),  # a blank line is a row of missing values
    (b"1,2\n   \n3,4\n", [[1, 2], [NAN, NAN], [3, 4]]),  # so is a line of spaces
    (b"1,2\n,\n3,4\n", [[1, 2], [NAN, NAN], [3, 4]]),  # and a line of empty cells
    (b"\n1,2\n", [[NAN, NAN], [1, 2]]),  # a blank first line too
    (b" 1.5 , 2 \n", [[1.5, 2]]),  # spaces around a number
    (b"\t1,2\t\n", [[1, 2]]),
    (b"+1,-2\n", [[1, -2]]),
    (b"1.,.5\n", [[1, 0.5]]),
    (b"1e5,-2.5E-3\n", [[1e5, -2.5e-3]]),
    (b"1e308,1e-400\n", [[1e308, 0.0]]),
    (b"5.1,3.5,1.4,0.2\n", [[5.1, 3.5, 1.4, 0.2]]),
    (b"7\n8\n", [[7], [8]]),  # one feature
])
def test_csv_rows_become_a_float64_matrix(body, expected, size):
    array = decode_sized(body, size)
    assert array.dtype == np.float64
    assert array.ndim == 2
    np.testing.assert_array_equal(array, np.array(expected, dtype=np.float64))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "expected"), [
    (b"1,,3\n", [[1, np.nan, 3]]),
    (b"1,2,\n", [[1, 2, np.nan]]),
    (b",1,2\n", [[np.nan, 1, 2]]),
    (b" ,1\n", [[np.nan, 1]]),  # a cell of spaces is empty too
    (b"nan,1\n", [[np.nan, 1]]),
    (b"NaN,1\n", [[np.nan, 1]]),
])
def test_empty_cells_are_missing_values(body, expected, size):
    np.testing.assert_array_equal(decode_sized(body, size), np.array(expected, dtype=np.float64))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "message"), [
    (b"1,2\n3\n", "CSV row 2 has 1 values but row 1 has 2"),
    (b"1\n2,3\n", "CSV row 2 has 2 values but row 1 has 1"),
    (b"1,2\n\n3,4,5\n", "CSV row 3 has 3 values but row 1 has 2"),  # a blank line counts as a row
    (b"1,2\n3,4\n# note\n", "CSV row 3 has 1 values but row 1 has 2"),
])
def test_ragged_rows_are_a_400_naming_the_row(body, message, size):
    data, _ = sized(body, size)
    with pytest.raises(BadRequest) as raised:
        decode(data, "text/csv")
    assert raised.value.status == 400
    assert raised.value.message == message


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "message"), [
    (b"1,2,3\n4,5\n6,7\n", "CSV row 1 has 3 values; the model takes 2"),  # the first row, not the second
    (b"1,2\n3,4\n5,6,7\n", "CSV row 3 has 3 values; the model takes 2"),
    (b"1,2\n\n3,4,5\n", "CSV row 3 has 3 values; the model takes 2"),
    (b'1,"a"\n2,"b",3\n', "CSV row 2 has 3 values; the model takes 2"),
])
def test_a_row_of_another_width_than_the_models_is_named_by_its_number(body, message, size):
    data, _ = sized(body, size)
    with pytest.raises(BadRequest) as raised:
        decode(data, "text/csv", 2)
    assert raised.value.message == message


NON_NUMERIC = [
    (b"a,2\n", [["a", 2.0]], "row 1, column 1: 'a' is not a number"),
    (b"1,2\n3,four\n", [[1.0, 2.0], [3.0, "four"]], "row 2, column 2: 'four' is not a number"),
    (b"1 2,3\n", [["1 2", 3.0]], "row 1, column 1: '1 2' is not a number"),
    (b"0x10,1\n", [["0x10", 1.0]], "row 1, column 1: '0x10' is not a number"),
    (b"NA,1\n", [["NA", 1.0]], "row 1, column 1: 'NA' is not a number"),
    (b"null,1\n", [["null", 1.0]], "row 1, column 1: 'null' is not a number"),
    (b"1," + b"x" * 50 + b"\n", [[1.0, "x" * 50]], f"row 1, column 2: {'x' * 40 + '...'!r} is not a number"),
    (b" 5 ,x \n", [[5.0, "x"]], "row 1, column 2: 'x' is not a number"),  # cells are stripped
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "expected", "message"), NON_NUMERIC)
def test_non_numeric_cells_are_kept_as_text_by_the_decoder(body, expected, message, size):
    array = decode_sized(body, size)
    assert array.dtype == object
    assert array.tolist() == expected


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "expected", "message"), NON_NUMERIC)
def test_non_numeric_cell_is_a_400_naming_row_and_column_for_a_numeric_model(body, expected, message, size):
    data, _ = sized(body, size)
    assert conform_message(data) == message


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cell", [b"true", b"True", b"FALSE"])
def test_boolean_words_are_text_not_numbers(cell, size):
    data, _ = sized(cell + b",1\n", size)
    assert decode(data, "text/csv")[0].tolist() == [cell.decode(), 1.0]  # pandas would have read 1 or 0
    assert conform_message(data) == f"row 1, column 1: {cell.decode()!r} is not a number"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "message"), [
    (b"inf,1\n", "row 1, column 1 is infinite or too large; send finite numbers"),
    (b"1,-Infinity\n", "row 1, column 2 is infinite or too large; send finite numbers"),
    (b"1,2\n3,1e999\n", "row 2, column 2 is infinite or too large; send finite numbers"),
])
def test_infinity_decodes_but_is_a_400_when_conformed(body, message, size):
    data, _ = sized(body, size)
    assert np.isinf(decode(data, "text/csv")).any()
    assert conform_message(data) == message


@pytest.mark.parametrize("size", SIZES)
def test_invalid_utf8_is_a_400_naming_the_byte(size):
    data, _ = sized(b"1,2\n\xff,1\n", size)
    with pytest.raises(BadRequest) as raised:
        decode(data, "text/csv")
    assert raised.value.message == "the body is not valid utf-8 text (byte 4)"


@pytest.mark.parametrize("size", SIZES)
def test_charset_parameter_is_used_to_read_the_body(size):
    data, _ = sized(b"1,2\n", size)
    array = decode(data, "text/csv; charset=latin-1")
    np.testing.assert_array_equal(array[0], [1, 2])
    # latin-1 reads any byte, so a non-ASCII letter is now a word, not an encoding error
    latin, _ = sized("\xe9,1\n".encode("latin-1"), size)
    assert decode(latin, "text/csv; charset=latin-1")[0].tolist() == ["\u00e9", 1.0]


@pytest.mark.parametrize("size", SIZES)
def test_unknown_charset_is_a_400(size):
    data, _ = sized(b"1,2\n", size)
    with pytest.raises(BadRequest) as raised:
        decode(data, "text/csv; charset=klingon")
    assert raised.value.message == "unknown charset 'klingon'"


def test_empty_body_is_a_400():
    with pytest.raises(BadRequest, match="the body holds no CSV rows"):
        decode_csv(b"")


@pytest.mark.parametrize(("body", "lines"), [
    (b"\n", 1), (b"\r\n\r\n", 2), (b"   \n  \n", 2), (b"\n" * (SMALL_CSV_BYTES + 1), SMALL_CSV_BYTES + 1),
])
def test_body_of_only_blank_lines_is_a_400_counting_them(body, lines):
    with pytest.raises(BadRequest) as raised:
        decode_csv(body)
    assert raised.value.message == f"the body holds only blank lines ({lines}); send rows of values"


@pytest.mark.parametrize("size", SIZES)
def test_a_final_newline_makes_no_row_but_every_other_line_is_one(size):
    data, times = sized(b"1,2\n\n", size)
    assert decode(data, "text/csv").shape == (2 * times, 2)
    assert decode(b"1,2", "text/csv").shape == decode(b"1,2\n", "text/csv").shape == (1, 2)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("body", "expected"), [
    (b'"1",2\n', [[1.0, 2.0]]),
    (b'"a,b",1\n', [["a,b", 1.0]]),  # a quoted comma is part of the cell
    (b'"say ""hi""",1\n', [['say "hi"', 1.0]]),
    (b'1," 2 "\n', [[1.0, 2.0]]),
    (b'"",1\n', [[None, 1.0]]),  # a quoted empty cell is missing too
])
def test_quoted_fields_are_read_as_csv(body, expected, size):
    array = decode_sized(body, size)
    assert [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in array.tolist()] == expected


@pytest.mark.parametrize("size", SIZES)
def test_a_quoted_field_keeps_its_line_break_as_training_reads_it(size):
    array = decode_sized(b'"a\nb",1\n', size)
    assert array.tolist() == [["a\nb", 1.0]]


@pytest.mark.parametrize("content_type", [
    "application/xml", "application/octet-stream", "text/plain", "text/csv-ish", "csv",
])
def test_unsupported_content_type_is_a_415(content_type):
    with pytest.raises(UnsupportedMediaType) as raised:
        decode(b"1,2\n", content_type)
    assert raised.value.status == 415
    assert raised.value.message.startswith(f"Content-Type {content_type!r} is not supported; send one of text/csv")


@pytest.mark.parametrize("content_type", [
    None, "text/csv", "TEXT/CSV", "text/csv; charset=utf-8", 'text/csv; charset="UTF-8"',
    "text/csv; header=absent",
])
def test_csv_content_type_is_accepted_with_any_parameters(content_type):
    np.testing.assert_array_equal(decode(b"1,2\n", content_type), [[1, 2]])


def test_large_and_small_paths_agree_on_a_realistic_payload():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 4)).round(6)
    text = "\n".join(",".join(map(str, row)) for row in rows.tolist()) + "\n"
    large = decode(text.encode(), "text/csv")
    assert len(text) > SMALL_CSV_BYTES
    small = np.vstack([decode(line.encode(), "text/csv") for line in text.splitlines()])
    np.testing.assert_array_equal(large, small)
    np.testing.assert_array_equal(large, rows)


def test_a_short_row_in_a_large_body_is_not_padded_with_nan():
    body = b"1,2,3\n" * 500 + b"4,5\n" + b"6,7,8\n"
    assert len(body) > SMALL_CSV_BYTES
    with pytest.raises(BadRequest, match="CSV row 501 has 2 values but row 1 has 3"):
        decode(body, "text/csv")


def test_decoders_table_maps_csv_to_decode_csv():
    assert decoders.DECODERS["text/csv"] is decode_csv


# -- large bodies of short plain decimals: the vectorised reader ---------------------------------

def decimal_cells(draw_count: int, rng: np.random.Generator, longest: int) -> list[str]:
    """Plain decimals as people and programs write them: signs, leading points, trailing points,
    leading zeros, integers, up to `longest` bytes each."""
    cells = []
    for _ in range(draw_count):
        digits = "".join(map(str, rng.integers(0, 10, int(rng.integers(1, longest + 1)))))
        cell = digits
        if rng.random() < 0.6 and len(digits) < longest:
            point = int(rng.integers(0, len(digits) + 1))
            cell = digits[:point] + "." + digits[point:]
        if rng.random() < 0.3 and len(cell) < longest:
            cell = "-" + cell
        cells.append(cell)
    return cells


@pytest.mark.parametrize("longest", [1, 3, 6, 9])
def test_large_bodies_of_decimals_read_exactly_as_float_reads_each_cell(longest):
    rng = np.random.default_rng(longest)
    for _ in range(12):
        rows, width = int(rng.integers(1100, 1500)), int(rng.integers(1, 8))
        cells = decimal_cells(rows * width, rng, longest)
        lines = [",".join(cells[r * width:(r + 1) * width]) for r in range(rows)]
        body = ("\n".join(lines) + ("\n" if rng.random() < 0.5 else "")).encode()
        assert len(body) > SMALL_CSV_BYTES
        expected = np.array([[float(c) for c in line.split(",")] for line in lines])
        decoded = decode_csv(body)
        assert decoded.dtype == np.float64
        # bit for bit: the same floats, and the same sign of zero
        assert decoded.shape == expected.shape and np.array_equal(decoded.view(np.int64), expected.view(np.int64))


@pytest.mark.parametrize(("cell", "message"), [
    ("1.2.3", "row 2, column 2"),
    ("--1", "row 2, column 2"),
    ("1-2", "row 2, column 2"),
    ("-", "row 2, column 2"),
    (".", "row 2, column 2"),
])
def test_a_malformed_decimal_in_a_large_body_is_a_400_naming_its_cell(cell, message):
    body = b"1.5,2\n" + f"3,{cell}\n".encode() + b"4.25,5\n" * 600
    assert message in conform_message(body)


@pytest.mark.parametrize(("body", "expected_first_rows"), [
    (b"1,2\n\n3,4\n" * 400, [[1, 2], [NAN, NAN]]),  # a blank line is a row of missing values
    (b"1,2\r\n3,4\r\n" * 400, [[1, 2], [3, 4]]),  # CRLF
    (b"1e2,2\n3,4\n" * 400, [[100, 2], [3, 4]]),  # an exponent
    (b"1234567.5,2\n3,4\n" * 400, [[1234567.5, 2], [3, 4]]),  # longer than the vectorised reader takes
    (b"0.1234567890123456789,2\n3,4\n" * 300, [[0.1234567890123456789, 2], [3, 4]]),  # more digits than a float holds
])
def test_large_bodies_the_vectorised_reader_declines_are_read_by_the_others(body, expected_first_rows):
    assert len(body) > SMALL_CSV_BYTES
    np.testing.assert_array_equal(decode_csv(body)[:2], np.array(expected_first_rows, dtype=np.float64))


def test_a_charset_that_does_not_write_digits_as_ascii_is_not_read_as_ascii():
    body = ("1.5,2\n" * 500).encode("utf-16")
    assert decode_csv(body, "utf-16")[:1].tolist() == [[1.5, 2.0]]


@pytest.mark.parametrize(("body", "n_features", "shape"), [
    (b'["lovely lamp", "broken chair", "cosy sofa"]', 1, (3, 1)),  # a row per item for one feature
    (b'{"instances": ["lovely lamp", "broken chair"]}', 1, (2, 1)),
    (b"[1.5, 2.5]", 1, (2, 1)),
    (b"[5.1, 3.5, 1.4, 0.2]", 4, (1, 4)),  # one row of four features
    (b"[5.1, 3.5, 1.4, 0.2]", None, (1, 4)),  # unknown width: one row, as ever
])
def test_a_flat_json_list_is_a_row_per_item_only_for_a_model_of_one_feature(body, n_features, shape):
    assert decoders.decode(body, "application/json", n_features).shape == shape


def test_json_lines_of_single_values_are_one_value_rows():
    rows = decoders.decode(b'"lovely lamp"\n"broken chair"\n\n', "application/jsonlines", 1)
    assert rows.shape == (3, 1)
    assert rows[0, 0] == "lovely lamp" and rows[1, 0] == "broken chair"


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/csv", b"1,2\n3,4\n"), ("text/csv", b"1,2\n3,4\n" * 200), ("application/json", b"[[1, 2], [3, 4]]"),
    ("application/jsonlines", b"[1, 2]\n[3, 4]\n"), ("text/csv; charset=utf-8", b"1,2\n3,4\n"),
])
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_cell(content_type, body):
    rows = decode(b"\xef\xbb\xbf" + body, content_type)
    assert np.array_equal(rows[:2], [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("body", [b'1,"red\n2,blue\n3,green\n', b'"a"\n"unterminated\nsecond\n'])
def test_a_quote_never_closed_is_a_400_not_rows_swallowed(body):
    with pytest.raises(BadRequest) as raised:
        decode(body, "text/csv")
    assert "quote" in raised.value.message and "CSV line" in raised.value.message


def test_a_quoted_cell_longer_than_the_csv_modules_default_limit_is_read():
    review = "x" * 200_000
    rows = decode(f'"{review}",1\n"short",2\n'.encode(), "text/csv")
    assert rows[0, 0] == review and rows[1, 0] == "short" and rows[1, 1] == 2.0


@pytest.mark.parametrize(("body", "expected"), [
    (b"1.0,007\n", [[1.0, "007"]]),  # as training's pandas read a text column: not the number 7
    (b'1.0," teal"\n', [[1.0, " teal"]]),  # spaces kept, quoted or not
    (b"1.0, teal\n", [[1.0, " teal"]]),
    (b"1.0,1.50\n", [[1.0, "1.50"]]),
    (b"1.0,\n2.0,NA\n3.0,null\n", [[1.0, NAN], [2.0, NAN], [3.0, NAN]]),  # pandas' missing words
    (b"1.0,red\n\n2.0,blue\n", [[1.0, "red"], [NAN, NAN], [2.0, "blue"]]),  # a blank line is a row
    (b" 4 ,red\n", [[4.0, "red"]]),  # a number column is read as before
])
def test_cells_of_the_models_text_columns_stay_as_sent(body, expected):
    rows = decode(body, "text/csv", 2, text_columns=(1,))
    assert rows.shape == (len(expected), 2)
    for got, want in zip(rows.ravel().tolist(), [c for row in expected for c in row], strict=True):
        assert (got != got and want != want) or got == want, (got, want)


def test_a_text_only_model_gets_numbers_as_text_and_a_line_of_spaces_as_blank():
    rows = decode(b"1.50\n   \n\nlovely lamp\n", "text/csv", 1, text_columns=(0,))
    assert rows[0, 0] == "1.50" and rows[1, 0] != rows[1, 0] and rows[2, 0] != rows[2, 0]
    assert rows[3, 0] == "lovely lamp" and len(rows) == 4


@pytest.mark.parametrize("seed", range(6))
def test_large_bodies_of_any_plain_numbers_read_exactly_as_float_reads_each_cell(seed):
    """Long decimals, exponents, signs, spaces around a number, empty cells (the readers past the
    vectorised one): every float bit for bit, and the sign of zero, as float() reads it."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(1, 9))
    rows = int(rng.integers(20_000, 30_000)) // width
    values = rng.normal(scale=10.0 ** rng.integers(-30, 30, size=(rows, width)))
    forms = [repr, lambda v: f"{v:.3e}", lambda v: f"{v:+.17g}", lambda v: f" {v:g} ", lambda v: f"{v:.0f}",
             lambda v: "", lambda v: "-0", lambda v: f"{v:E}"]
    cells = [[forms[int(k)](v) for k, v in zip(rng.integers(0, len(forms), width), row, strict=True)]
             for row in values.tolist()]
    body = ("\n".join(",".join(row) for row in cells) + "\n").encode()
    assert len(body) > SMALL_CSV_BYTES
    expected = np.array([[float(c) if c.strip() else np.nan for c in row] for row in cells])
    decoded = decode_csv(body)
    assert decoded.dtype == np.float64
    assert decoded.shape == expected.shape and np.array_equal(decoded.view(np.int64), expected.view(np.int64))
