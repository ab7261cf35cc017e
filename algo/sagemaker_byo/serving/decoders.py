"""Request bodies to model input. One function per media type; `DECODERS` maps one to the other.

Every decoder returns a 2-D array (rows x features: float64, or object where some cells are text),
or a DataFrame when the body names its features (JSON records, Parquet), and raises `BadRequest` with a short message
naming the row and column for anything malformed. Empty cells and JSON nulls are missing values
(NaN). Every line of a CSV or JSON Lines body is a row, in order: a blank line, or a line of
empty cells, is a row of missing values, never dropped; only a final newline makes no row.
Whether text is a category or a mistake, and whether a missing or infinite value is allowed, is
for the model's contract to say (`contract.conform`).

`n_features`, the model's feature count where known, settles one ambiguity: a flat JSON list
`["a", "b"]` is one row, except for a model of one feature, where it is a row per item.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Collection
from functools import lru_cache

import numpy as np
import pandas as pd

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, quoted
from . import media

# Below this size the pure-Python path beats pandas' C parser (whose fixed cost is ~100 us).
SMALL_CSV_BYTES = 2048
_BOOLEAN_WORDS = re.compile(rb"(?i)true|false")
_PLAIN_NUMBER_BYTES = b"0123456789.,-+eE\n\r \t"
_DECIMAL_BYTES = b"0123456789.,-\n"
# The vectorised reader below works on numbers of up to this many bytes (iris' "5.1" has 3); it
# beats pandas' parser up to about 6 bytes a number, and pandas reads the rest. Its fixed cost
# (~80 us) pays from about 1 KB of body (some 65 iris rows) on.
_SHORT_DECIMAL = 6
VECTORISED_CSV_BYTES = 1024
_POWERS_OF_10 = 10.0 ** np.arange(_SHORT_DECIMAL + 1)
_JSON_BOOLEANS = re.compile(rb"true|false")
_LINE_ENDS = re.compile(r"\r\n|\r|\n")
# pandas' default na_values: what training's read_csv reads as missing in a text column.
PANDAS_MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                            "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
# A long quoted review is one cell; the csv module's own limit (128 KB) would refuse it. The body
# limit (SAGEMAKER_MAX_PAYLOAD_IN_MB) bounds it instead.
csv.field_size_limit(2**31 - 1)


def _text(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except LookupError:
        raise BadRequest(f"unknown charset {quoted(charset)}") from None
    except UnicodeDecodeError as error:
        raise BadRequest(f"the body is not valid {charset} text (byte {error.start})") from None


def _lines(text: str) -> list[str]:
    """The lines of a body: split at \\n, \\r\\n or a lone \\r (old Mac line ends, which training's
    pandas reads as line ends too); a final line end makes no line."""
    lines = _LINE_ENDS.split(text) if "\r" in text else text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _csv_cells(text: str) -> list[list[str]]:
    """The cells of each line. Quoted fields go through the csv module, strictly: a quote opened
    and never closed would otherwise swallow every line after it into one cell."""
    if '"' not in text:
        return [line.split(",") for line in _lines(text)]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        return list(reader)
    except csv.Error as error:
        raise BadRequest(f"CSV line {reader.line_num} cannot be read: {error} "
                         f"(a quote that is never closed?)") from None


def _csv_rows_slowly(text: str, text_columns: Collection[int] = (), n_features: int | None = None) -> np.ndarray:
    """Row by row: numbers as floats, empty cells as NaN, anything else kept as text (a category,
    or a mistake the model's contract will name); a blank line is a row of missing values;
    ragged rows are refused here, naming the first row whose width differs from the model's
    (`n_features`, where known) or the first row's. A cell of a `text_columns` column is kept as it
    was sent, as training's pandas read it (missing where pandas reads it as missing: "", "NA", ...)."""
    rows = _csv_cells(text)
    # A line of nothing but spaces is blank, as training's pandas skips it (a row of missing values
    # here, never dropped), even in a text column.
    blank = [len(row) <= 1 and not any(cell.strip() for cell in row) for row in rows]
    widths = [len(row) for row, empty in zip(rows, blank, strict=True) if not empty]
    if not rows:
        raise BadRequest("the body holds no CSV rows")
    if not widths:
        raise BadRequest(f"the body holds only blank lines ({len(rows)}); send rows of values")
    width = widths[0] if n_features is None else n_features
    out = np.empty((len(rows), width), dtype=object)
    numeric = True
    for i, row in enumerate(rows):
        if blank[i]:
            out[i, :] = np.nan
            continue
        if len(row) != width:
            if n_features is not None:
                raise BadRequest(f"CSV row {i + 1} has {len(row)} values; the model takes {width}")
            first = blank.index(False) + 1
            raise BadRequest(f"CSV row {i + 1} has {len(row)} values but row {first} has {width}")
        for j, cell in enumerate(row):
            if j in text_columns:
                out[i, j] = np.nan if cell in PANDAS_MISSING else cell
                numeric = False
                continue
            cell = cell.strip()
            if not cell:
                out[i, j] = np.nan
                continue
            try:
                out[i, j] = float(cell)
            except ValueError:
                out[i, j] = cell
                numeric = False
    return out.astype(np.float64) if numeric else out


@lru_cache(maxsize=32)
def _ascii_digits(charset: str) -> bool:
    """Whether the charset writes digits, points, minus, comma and newline as ASCII does."""
    try:
        return _DECIMAL_BYTES.decode(charset) == _DECIMAL_BYTES.decode("ascii")
    except (LookupError, UnicodeDecodeError):
        return False


def _short_decimals(data: bytes) -> np.ndarray | None:
    """Rows of short plain decimals ("5.1,-0.25,3") read with a few numpy passes per byte of the
    longest number, or None for anything else (other bytes, longer numbers, exponents, empty
    cells, ragged rows, stray signs or points), which the other readers take.

    Each number's digits form an integer below 2**53, an exact float, so dividing it by its power
    of ten rounds once and correctly: the result is the float that float() or pandas reads."""
    if data.translate(None, _DECIMAL_BYTES):
        return None
    # A newline before the first cell, as every other cell has a comma or newline before it.
    a = np.frombuffer(b"\n" + data + (b"" if data.endswith(b"\n") else b"\n"), np.uint8)
    ends = np.flatnonzero(a[1:] <= 44) + 1  # each cell's closing comma (44) or newline (10)
    row_ends = a[ends] == 10
    width = int(row_ends.argmax()) + 1
    cells = len(ends)
    if cells % width or np.count_nonzero(row_ends) != cells // width or not row_ends[width - 1::width].all():
        return None
    before = np.empty_like(ends)  # the comma or newline before each cell
    before[0] = 0
    before[1:] = ends[:-1]
    lengths = ends - before - 1
    longest = int(lengths.max())
    if lengths.min() < 1 or longest > _SHORT_DECIMAL:
        return None
    minus_signs = np.count_nonzero(a == 45)
    # Right to left through every cell at once, k bytes before its end (or the separator before
    # it, once past its first byte). A point counts as a 0 digit here; what it takes to remove
    # it again is noted as it is passed.
    number = np.zeros(cells)
    right_of_point = np.zeros(cells)  # the value of the digits after the point
    tens = np.ones(cells)  # 10 where there is a point
    scale = np.ones(cells)  # 10 ** digits after the point
    points = np.zeros(cells, bool)
    minus = np.zeros(cells, bool)
    position = np.empty_like(ends)
    char = np.empty(cells, np.uint8)
    digit = np.empty(cells, np.uint8)
    flag = np.empty(cells, bool)
    term = np.empty(cells)
    for k in range(1, longest + 1):
        np.subtract(ends, k, out=position)
        np.maximum(position, before, out=position)
        np.take(a, position, out=char)
        np.subtract(char, 48, out=digit)
        np.less_equal(digit, 9, out=flag)
        np.multiply(digit, flag, out=digit)
        np.multiply(digit, _POWERS_OF_10[k - 1], out=term)
        number += term
        np.equal(char, 46, out=flag)
        if flag.any():
            if (points & flag).any():
                return None  # two points in a number
            points |= flag
            np.copyto(right_of_point, number, where=flag)
            np.copyto(tens, 10.0, where=flag)
            np.copyto(scale, _POWERS_OF_10[k - 1], where=flag)
        if minus_signs:
            np.equal(char, 45, out=flag)
            minus |= flag
    if minus_signs and (np.count_nonzero(minus) != minus_signs or not np.array_equal(minus, a[before + 1] == 45)):
        return None  # a minus sign that does not open its number
    if (lengths - points - minus).min() < 1:
        return None  # no digit at all
    # number is left * 10**(k + 1) + right where left * 10**k + right was meant: every step is
    # exact (whole numbers below 10**7), and the last division rounds once.
    number -= right_of_point
    number /= tens
    number += right_of_point
    number /= scale
    if minus_signs:
        np.negative(number, out=number, where=minus)
    return number.reshape(-1, width)


def decode_csv(data: bytes, charset: str = "utf-8", n_features: int | None = None,
               text_columns: Collection[int] = ()) -> np.ndarray:
    """Header-less CSV rows: a float64 array, or an object array where some cells are text.
    `text_columns`: positions of the model's text columns, whose cells stay text ("007" is not 7)."""
    if text_columns:
        return _csv_rows_slowly(_text(data, charset), frozenset(text_columns), n_features)
    if len(data) > VECTORISED_CSV_BYTES and _ascii_digits(charset):
        array = _short_decimals(data)
        if array is not None:
            return array
    # One fast pass: a body of digits, signs, points, exponents, commas and line breaks needs none
    # of the checks below.
    plain = not data.translate(None, _PLAIN_NUMBER_BYTES)
    if not plain and b'"' in data:  # quoted text: the csv module reads it
        return _csv_rows_slowly(_text(data, charset), (), n_features)
    if len(data) <= SMALL_CSV_BYTES:
        text = _text(data, charset)
        rows = [line.split(",") for line in _lines(text)]
        if not rows:
            raise BadRequest("the body holds no CSV rows")
        try:
            array = np.array(rows, dtype=np.float64)
        except ValueError:  # ragged rows, empty cells or words: find which, and say so
            return _csv_rows_slowly(text, (), n_features)
        return array
    if not plain and _BOOLEAN_WORDS.search(data):  # pandas would read true/false as 1/0
        return _csv_rows_slowly(_text(data, charset), (), n_features)
    try:
        frame = pd.read_csv(
            io.BytesIO(data), header=None, dtype=np.float64, encoding=charset,
            skip_blank_lines=False, engine="c", na_filter=True, keep_default_na=False, na_values=[""],
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, LookupError, pd.errors.EmptyDataError):
        return _csv_rows_slowly(_text(data, charset), (), n_features)
    array = frame.to_numpy()
    # pandas pads a short row (or a blank line) with NaN; the comma count shows whether any row was
    # short, and the line count that every line is a row.
    if data.count(b",") != (array.shape[1] - 1) * array.shape[0] or len(array) != _line_count(data):
        return _csv_rows_slowly(_text(data, charset), (), n_features)
    return array


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _rows_to_array(rows: list, what: str, may_hold_booleans: bool = True) -> np.ndarray:
    """A list of rows (lists of numbers; null is a missing value) as a 2-D float64 array.

    The fast path lets numpy convert; it is taken only where it cannot hide a string, a null or
    a boolean (numpy reads [1, true] as [1, 1]), else every cell is checked."""
    if not rows:
        raise BadRequest(f"{what} holds no rows")
    array = None
    if not may_hold_booleans:
        try:
            array = np.array(rows)  # no dtype: strings and nulls must not be converted silently
        except (ValueError, TypeError, OverflowError):
            pass
    if array is not None and array.ndim == 2 and array.shape[1] and array.dtype.kind in "iuf":
        return array.astype(np.float64)
    width = None
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(f"{what}: row {i + 1} is {_kind(row)}, not a list of numbers")
        if not row:
            raise BadRequest(f"{what}: row {i + 1} has no values")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise BadRequest(f"{what}: row {i + 1} has {len(row)} values but row 1 has {width}")
        out.append([_value(cell, f"{what}: row {i + 1}, column {j + 1}") for j, cell in enumerate(row)])
    if any(isinstance(cell, str) for row in out for cell in row):
        array = np.empty((len(out), width), dtype=object)
        array[:] = out
        return array
    return np.array(out, dtype=np.float64)


def _value(cell, where: str) -> float | str:
    """A number as a float, text as it is (a category), null as NaN; anything else is refused."""
    if cell is None:
        return np.nan
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool) or not isinstance(cell, (int, float)):
        raise BadRequest(f"{where} is {_kind(cell)}, not a number or text")
    try:
        return float(cell)
    except OverflowError:
        raise BadRequest(f"{where} is too large for a number") from None


def _kind(value) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"the string {shown!r}"
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _records_to_frame(records: list, what: str) -> pd.DataFrame:
    """Objects of feature name to value, as a DataFrame (columns in first-seen order)."""
    rows = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadRequest(f"{what}: record {i + 1} is {_kind(record)}; send all records as objects")
        rows.append({name: _value(value, f"{what}: record {i + 1}, feature {name!r}")
                     for name, value in record.items()})
    frame = pd.DataFrame.from_records(rows)
    return frame.astype(np.float64) if all(dtype.kind == "f" for dtype in frame.dtypes) else frame


def _row(item):
    """One row of a JSON body: a list, or {"features": [...]} as SageMaker's built-in algorithms send."""
    if isinstance(item, dict) and "features" in item:
        return item["features"]
    return item


def _json_value_to_input(value, what: str, booleans: bool, n_features: int | None) -> np.ndarray | pd.DataFrame:
    if isinstance(value, dict):
        if "columns" in value and "data" in value:  # pandas' split orientation
            columns, data = value["columns"], value["data"]
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise BadRequest(f"{what}: 'columns' must be a list of feature names")
            array = _rows_to_array(data if isinstance(data, list) else [data], f"{what} 'data'", booleans)
            if array.shape[1] != len(columns):
                raise BadRequest(f"{what}: 'data' rows have {array.shape[1]} values but 'columns' names {len(columns)}")
            return pd.DataFrame(array, columns=columns)
        for key in ("instances", "inputs"):
            if key in value:
                return _json_value_to_input(value[key], f"{what} '{key}'", booleans, n_features)
        if "features" in value:
            return _rows_to_array([value["features"]], what, booleans)
        raise BadRequest(
            f"{what}: an object needs 'instances', 'inputs', 'features', or 'columns' and 'data'"
        )
    if isinstance(value, list):
        if not value:
            raise BadRequest(f"{what} holds no rows")
        if all(isinstance(item, dict) and "features" not in item for item in value):
            return _records_to_frame(value, what)
        rows = [_row(item) for item in value]
        if not any(isinstance(r, (list, dict)) for r in rows):
            # a flat list is one row, [5.1, 3.5, 1.4, 0.2]; for a model of one feature, a row per item
            rows = [[r] for r in rows] if n_features == 1 else [rows]
        return _rows_to_array(rows, what, booleans)
    raise BadRequest(f"{what} is {_kind(value)}; send a list of rows or an object with 'instances'")


def _parse_json(text: str, what: str):
    try:
        return json.loads(text)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    except ValueError as error:
        raise BadRequest(f"{what} is not valid JSON: {error}") from None


def decode_json(data: bytes, charset: str = "utf-8", n_features: int | None = None) -> np.ndarray | pd.DataFrame:
    """A list of rows, {"instances": [...]}, {"inputs": [...]}, pandas' split orientation
    {"columns": [...], "data": [[...]]}, or a list of records [{"name": value, ...}]."""
    value = _parse_json(_text(data, charset), "the JSON body")
    return _json_value_to_input(value, "the JSON body", _JSON_BOOLEANS.search(data) is not None, n_features)


def decode_jsonlines(data: bytes, charset: str = "utf-8", n_features: int | None = None,
                     ) -> np.ndarray | pd.DataFrame:
    """One row per line: a list of values, {"features": [...]}, a record of feature names, or a
    single value; a blank line is a row of missing values."""
    items = [
        _parse_json(line, f"JSON line {number}") if line.strip() else _BLANK
        for number, line in enumerate(_lines(_text(data, charset)), start=1)
    ]
    present = [item for item in items if item is not _BLANK]
    if not present:
        raise BadRequest("the body holds no JSON lines" if not items else
                         f"the body holds only blank lines ({len(items)}); send a row per line")
    if all(isinstance(item, dict) and "features" not in item for item in present):
        return _records_to_frame([{} if item is _BLANK else item for item in items], "the JSON lines")
    rows = [_row(item) for item in present]
    width = len(rows[0]) if isinstance(rows[0], list) else 1
    rows = [[None] * width if item is _BLANK else _row(item) for item in items]
    rows = [row if isinstance(row, (list, dict)) else [row] for row in rows]  # a single value is a row of one
    return _rows_to_array(rows, "the JSON lines", _JSON_BOOLEANS.search(data) is not None)


_BLANK = object()  # a blank line of JSON Lines


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def decode_npy(data: bytes, charset: str = "utf-8", n_features: int | None = None) -> np.ndarray:
    """A NumPy .npy array of numbers, 1-D (one row) or 2-D. Read as .npy only: never unpickled,
    never an .npz archive, and its header is checked against the body before anything is allocated."""
    stream = io.BytesIO(data)
    if not data.startswith(b"\x93NUMPY"):
        raise BadRequest("the body is not a .npy array")
    try:
        version = np.lib.format.read_magic(stream)
        read_header = _NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, fortran_order, dtype = read_header(stream)
    except Exception as error:  # noqa: BLE001 - numpy parses the header with Python's tokenizer: any failure is the body's
        raise BadRequest(f"the body is not a valid .npy array ({error})") from None
    if dtype.hasobject:
        raise BadRequest("the .npy body holds Python objects; send an array of numbers")
    if dtype.kind not in "biuf":
        raise BadRequest(f"the .npy array holds {dtype} values; send numbers")
    if len(shape) not in (1, 2) or 0 in shape:
        raise BadRequest(f"the .npy array has shape {shape}; send one row or a 2-D array of rows")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data) - stream.tell():
        raise BadRequest(f"the body is not a valid .npy array: its header says shape {shape} of {dtype}, "
                         f"which the {len(data) - stream.tell()} bytes after it do not hold")
    array = np.frombuffer(data, dtype=dtype, offset=stream.tell())
    array = array.reshape(shape, order="F" if fortran_order else "C")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    return array.astype(np.float64)


_PARQUET_MAGIC = b"PAR1"  # a Parquet file starts and ends with it


def _parquet_column(name: str, column) -> np.ndarray:
    """One Parquet column as a float64 array (numbers, booleans as 1 and 0, nulls as NaN) or an
    object array of text (strings and categories; nulls as NaN); any other type is a 400 naming it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    value_kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    text = pa.types.is_string(value_kind) or pa.types.is_large_string(value_kind) or pa.types.is_string_view(value_kind)
    number = (pa.types.is_integer(value_kind) or pa.types.is_floating(value_kind) or pa.types.is_decimal(value_kind)
              or pa.types.is_boolean(value_kind) or pa.types.is_null(value_kind))
    if not (text or number):
        raise BadRequest(f"Parquet column {quoted(name)} is of type {kind}, which a model cannot take; "
                         f"send numbers, text, booleans or categories")
    if pa.types.is_dictionary(kind):  # a category: its values, each decoded once
        return _missing_as_nan(column.to_pandas().astype(object))
    if text:
        return _missing_as_nan(column.to_numpy(zero_copy_only=False))
    # as float() reads a number: a large integer or a decimal rounds to the nearest float
    return pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def _missing_as_nan(values) -> np.ndarray:
    values = np.array(values, dtype=object)  # a copy: pyarrow's arrays are read-only
    values[pd.isna(values)] = np.nan
    return values


def _pandas_index_columns(schema) -> set[str]:
    """The columns in which pandas stored a DataFrame's index (a range index is stored as a
    description instead); nothing where the file's pandas metadata is absent or unreadable."""
    try:
        described = (schema.pandas_metadata or {}).get("index_columns", [])
    except (ValueError, AttributeError):  # not JSON, or not an object: metadata the file does not need
        return set()
    return {name for name in described if isinstance(name, str)} if isinstance(described, list) else set()


def _damaged(error: Exception) -> BadRequest:
    reason = " ".join(str(error).split()) or type(error).__name__
    return BadRequest(f"the body is not a valid Parquet file ({reason[:200]})")


def decode_parquet(data: bytes, charset: str = "utf-8", n_features: int | None = None,
                   payload_limit: int | None = None) -> pd.DataFrame:
    """A Parquet file: a row per row, its columns named features (a DataFrame, as JSON records are).
    Numbers, text, booleans, nullable integers and categories are read; nulls are missing values.
    A pandas index stored as a column is not a feature, as pandas.read_parquet leaves it out.

    Given the server's `payload_limit` (bytes), a file of more values (rows x columns) than a CSV
    body of that size holds ("0," each) is a 413 before anything is unpacked: a few KB of
    Parquet can describe a billion equal values, gigabytes once read."""
    import pyarrow as pa  # here, not at the top: only a Parquet body pays for loading it
    import pyarrow.parquet as pq

    if len(data) < 12 or not (data.startswith(_PARQUET_MAGIC) and data.endswith(_PARQUET_MAGIC)):
        raise BadRequest("the body is not a Parquet file (it must start and end with 'PAR1')")
    try:
        # ParquetFile rather than read_table: the dataset reader refuses a column named twice, where
        # conform names it instead
        parquet = pq.ParquetFile(pa.BufferReader(data))
        rows, width = parquet.metadata.num_rows, parquet.metadata.num_columns
        if payload_limit is not None and rows * width > payload_limit // 2:
            raise PayloadTooLarge(
                f"the Parquet body holds {rows:,} rows of {width} columns, more values than a body of the "
                f"{payload_limit // 2**20} MB limit holds as CSV ({payload_limit // 2:,}); send fewer rows")
        table = parquet.read()
    except PayloadTooLarge:
        raise
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a damaged file: all the body's
        raise _damaged(error) from None
    index = _pandas_index_columns(table.schema)
    names = [name for name in table.column_names if name not in index]
    if not names:
        raise BadRequest("the Parquet body holds no columns")
    if not table.num_rows:
        raise BadRequest("the Parquet body holds no rows")
    try:
        columns = [_parquet_column(name, table.column(position))
                   for position, name in enumerate(table.column_names) if name not in index]
    except BadRequest:
        raise
    except Exception as error:  # noqa: BLE001 - damaged values (text that is not UTF-8, say): the body's
        raise _damaged(error) from None
    # by position, then named: a name given twice stays twice, and conform refuses it by name
    frame = pd.DataFrame(dict(enumerate(columns)), index=range(table.num_rows))
    frame.columns = names
    return frame


# Each takes the body, its charset and the model's feature count (None where unknown).
DECODERS: dict[str, Callable[[bytes, str, int | None], np.ndarray | pd.DataFrame]] = {
    "text/csv": decode_csv,
    "application/json": decode_json,
    "application/jsonlines": decode_jsonlines,
    "application/x-jsonlines": decode_jsonlines,
    "application/x-npy": decode_npy,
    "application/x-parquet": decode_parquet,
}


def decode(data: bytes, content_type: str | None, n_features: int | None = None,
           text_columns: Collection[int] = (), payload_limit: int | None = None) -> np.ndarray | pd.DataFrame:
    """The body as rows, by its Content-Type (missing means text/csv). `n_features` and
    `text_columns` (positions) are what the model's contract knows of its columns, if anything;
    `payload_limit` (bytes) bounds what a Parquet body may unpack to (`decode_parquet`)."""
    media_type, params = media.parse(content_type or "text/csv")
    decoder = DECODERS.get(media_type)
    if decoder is None:
        raise UnsupportedMediaType(
            f"Content-Type {quoted(media_type)} is not supported; send one of {', '.join(DECODERS)}"
        )
    charset = params.get("charset", "utf-8")
    if data.startswith(codecs.BOM_UTF8) and charset.lower().replace("_", "-") in ("utf-8", "utf8"):
        data = data[len(codecs.BOM_UTF8):]  # a byte-order mark, as some editors write: not a cell
    if text_columns and media_type == "text/csv":  # only CSV cannot tell "007" from 7
        return decode_csv(data, charset, n_features, text_columns)
    if payload_limit is not None and decoder is decode_parquet:  # only Parquet unpacks to more than it sends
        return decode_parquet(data, charset, n_features, payload_limit)
    return decoder(data, charset, n_features)
