"""Request bodies to model input. One function per media type; `DECODERS` maps one to the other.

Every decoder returns a 2-D float64 array (rows x features), or a DataFrame when the body names
its features, and raises `BadRequest` with a short message naming the row and column for anything
malformed. Empty cells and JSON nulls are missing values (NaN).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from . import media
from .errors import BadRequest, UnsupportedMediaType

# Below this size the pure-Python path beats pandas' C parser (whose fixed cost is ~100 us).
SMALL_CSV_BYTES = 2048
_BOOLEAN_WORDS = re.compile(rb"(?i)true|false")


def _text(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except LookupError:
        raise BadRequest(f"unknown charset {charset!r}") from None
    except UnicodeDecodeError as error:
        raise BadRequest(f"the body is not valid {charset} text (byte {error.start})") from None


def _csv_rows_slowly(text: str) -> np.ndarray:
    """Row by row, to find and name exactly what is wrong."""
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    if not rows:
        raise BadRequest("the body holds no CSV rows")
    width = len(rows[0])
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise BadRequest(f"CSV row {i + 1} has {len(row)} values but row 1 has {width}")
        for j, cell in enumerate(row):
            cell = cell.strip()
            if not cell:
                out[i, j] = np.nan
                continue
            try:
                out[i, j] = float(cell)
            except ValueError:
                shown = cell if len(cell) <= 40 else cell[:40] + "..."
                raise BadRequest(f"CSV row {i + 1}, column {j + 1}: {shown!r} is not a number") from None
    return out


def decode_csv(data: bytes, charset: str = "utf-8") -> np.ndarray:
    """Header-less CSV rows of numbers."""
    if b'"' in data:
        raise BadRequest("quoted CSV fields are not supported; send plain numbers separated by commas")
    if len(data) <= SMALL_CSV_BYTES:
        text = _text(data, charset)
        rows = [line.split(",") for line in text.splitlines() if line and not line.isspace()]
        if not rows:
            raise BadRequest("the body holds no CSV rows")
        try:
            array = np.array(rows, dtype=np.float64)
        except ValueError:  # ragged rows, empty cells or words: find which, and say so
            return _csv_rows_slowly(text)
        return array
    if _BOOLEAN_WORDS.search(data):  # pandas would read true/false as 1/0
        return _csv_rows_slowly(_text(data, charset))
    try:
        frame = pd.read_csv(
            io.BytesIO(data), header=None, dtype=np.float64, encoding=charset,
            skip_blank_lines=True, engine="c", na_filter=True, keep_default_na=False, na_values=[""],
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, LookupError, pd.errors.EmptyDataError):
        return _csv_rows_slowly(_text(data, charset))
    array = frame.to_numpy()
    # pandas pads a short row with NaN; the comma count shows whether any row was short.
    if data.count(b",") != (array.shape[1] - 1) * array.shape[0]:
        return _csv_rows_slowly(_text(data, charset))
    return array


def _rows_to_array(rows: list, what: str) -> np.ndarray:
    """A list of rows (lists of numbers; null is a missing value) as a 2-D float64 array."""
    if not rows:
        raise BadRequest(f"{what} holds no rows")
    try:
        array = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        array = None
    if array is not None and array.ndim == 2:
        return array
    width = None
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(f"{what}: row {i + 1} is {_kind(row)}, not a list of numbers")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise BadRequest(f"{what}: row {i + 1} has {len(row)} values but row 1 has {width}")
        values = []
        for j, cell in enumerate(row):
            if cell is None:
                values.append(np.nan)
            elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
                values.append(cell)
            else:
                raise BadRequest(f"{what}: row {i + 1}, column {j + 1} is {_kind(cell)}, not a number")
        out.append(values)
    try:
        return np.array(out, dtype=np.float64)
    except OverflowError:
        raise BadRequest(f"{what}: a number is too large") from None


def _kind(value) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"the string {shown!r}"
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _records_to_frame(records: list, what: str) -> pd.DataFrame:
    """Objects of feature name to value, as a DataFrame (columns in first-seen order)."""
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadRequest(f"{what}: record {i + 1} is {_kind(record)}; send all records as objects")
        for name, value in record.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise BadRequest(f"{what}: record {i + 1}, feature {name!r} is {_kind(value)}, not a number")
    return pd.DataFrame.from_records(records).astype(np.float64)


def _row(item):
    """One row of a JSON body: a list, or {"features": [...]} as SageMaker's built-in algorithms send."""
    if isinstance(item, dict) and "features" in item:
        return item["features"]
    return item


def _json_value_to_input(value, what: str) -> np.ndarray | pd.DataFrame:
    if isinstance(value, dict):
        if "columns" in value and "data" in value:  # pandas' split orientation
            columns, data = value["columns"], value["data"]
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise BadRequest(f"{what}: 'columns' must be a list of feature names")
            array = _rows_to_array(data if isinstance(data, list) else [data], f"{what} 'data'")
            if array.shape[1] != len(columns):
                raise BadRequest(f"{what}: 'data' rows have {array.shape[1]} values but 'columns' names {len(columns)}")
            return pd.DataFrame(array, columns=columns)
        for key in ("instances", "inputs"):
            if key in value:
                return _json_value_to_input(value[key], f"{what} '{key}'")
        if "features" in value:
            return _rows_to_array([value["features"]], what)
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
            rows = [rows]  # a single row: [5.1, 3.5, 1.4, 0.2]
        return _rows_to_array(rows, what)
    raise BadRequest(f"{what} is {_kind(value)}; send a list of rows or an object with 'instances'")


def _parse_json(text: str, what: str):
    try:
        return json.loads(text)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    except ValueError as error:
        raise BadRequest(f"{what} is not valid JSON: {error}") from None


def decode_json(data: bytes, charset: str = "utf-8") -> np.ndarray | pd.DataFrame:
    """A list of rows, {"instances": [...]}, {"inputs": [...]}, pandas' split orientation
    {"columns": [...], "data": [[...]]}, or a list of records [{"name": value, ...}]."""
    return _json_value_to_input(_parse_json(_text(data, charset), "the JSON body"), "the JSON body")


def decode_jsonlines(data: bytes, charset: str = "utf-8") -> np.ndarray | pd.DataFrame:
    """One row per line: a list of numbers, {"features": [...]}, or a record of feature names."""
    items = [
        _parse_json(line, f"JSON line {number}")
        for number, line in enumerate(_text(data, charset).splitlines(), start=1)
        if line.strip()
    ]
    if not items:
        raise BadRequest("the body holds no JSON lines")
    if all(isinstance(item, dict) and "features" not in item for item in items):
        return _records_to_frame(items, "the JSON lines")
    return _rows_to_array([_row(item) for item in items], "the JSON lines")


def decode_npy(data: bytes, charset: str = "utf-8") -> np.ndarray:
    """A NumPy .npy array of numbers, 1-D (one row) or 2-D. Never unpickled."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower() or "object" in str(error).lower():
            raise BadRequest("the .npy body holds Python objects; send an array of numbers") from None
        raise BadRequest(f"the body is not a valid .npy array: {error}") from None
    except (OSError, EOFError) as error:
        raise BadRequest(f"the body is not a valid .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise BadRequest("the body is not a .npy array")
    if array.dtype.kind not in "biuf":
        raise BadRequest(f"the .npy array holds {array.dtype} values; send numbers")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise BadRequest(f"the .npy array has shape {array.shape}; send one row or a 2-D array of rows")
    return array.astype(np.float64, copy=False)


def _check_finite(data):
    array = data.to_numpy() if isinstance(data, pd.DataFrame) else data
    if array.dtype.kind == "f" and np.isinf(array).any():
        row, column = np.argwhere(np.isinf(array))[0]
        raise BadRequest(f"row {row + 1}, column {column + 1} is infinite or too large; send finite numbers")
    return data


DECODERS: dict[str, Callable[[bytes, str], np.ndarray | pd.DataFrame]] = {
    "text/csv": decode_csv,
    "application/json": decode_json,
    "application/jsonlines": decode_jsonlines,
    "application/x-jsonlines": decode_jsonlines,
    "application/x-npy": decode_npy,
}


def decode(data: bytes, content_type: str | None) -> np.ndarray | pd.DataFrame:
    """The body as model input, by its Content-Type (missing means text/csv)."""
    media_type, params = media.parse(content_type or "text/csv")
    decoder = DECODERS.get(media_type)
    if decoder is None:
        raise UnsupportedMediaType(
            f"Content-Type {media_type!r} is not supported; send one of {', '.join(DECODERS)}"
        )
    return _check_finite(decoder(data, params.get("charset", "utf-8")))
