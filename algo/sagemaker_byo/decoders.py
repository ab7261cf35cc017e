"""Request bodies to model input. One function per media type; `DECODERS` maps one to the other.

Every decoder returns a 2-D float64 array (rows x features) and raises `BadRequest` with a short
message naming the row and column for anything malformed. Empty cells are missing values (NaN).
"""

from __future__ import annotations

import io
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


def _check_finite(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f" and np.isinf(array).any():
        row, column = np.argwhere(np.isinf(array))[0]
        raise BadRequest(f"row {row + 1}, column {column + 1} is infinite or too large; send finite numbers")
    return array


DECODERS: dict[str, Callable[[bytes, str], np.ndarray]] = {
    "text/csv": decode_csv,
}


def decode(data: bytes, content_type: str | None) -> np.ndarray:
    """The body as model input, by its Content-Type (missing means text/csv)."""
    media_type, params = media.parse(content_type or "text/csv")
    decoder = DECODERS.get(media_type)
    if decoder is None:
        raise UnsupportedMediaType(
            f"Content-Type {media_type!r} is not supported; send one of {', '.join(DECODERS)}"
        )
    return _check_finite(decoder(data, params.get("charset", "utf-8")))
