"""Predictions to response bodies. One function per media type; `ENCODERS` maps one to the other.

A prediction is a 1-D array (one label or value per row), a 2-D array (several values per row),
`Probabilities` (one value per class per row, classes in the model's order), or records (a list
of dicts, one per row, such as {"label": ..., "score": ...}). Output rows are in input order, one
per line in CSV and JSON Lines, so batch transform's `AssembleWith=Line` lines them up with the
input. A missing value (NaN, None) is null in JSON and an empty cell in CSV. `count` reads back
how many answers a body holds, so the server can check a custom output_fn too.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable

import numpy as np

from ..errors import NotAcceptable, quoted
from .invocation import Probabilities


def _text(value) -> str:
    """A label as text: text as it is (also a str subclass such as a str Enum), else str()."""
    return value if isinstance(value, str) else str(value)


def _cell(value) -> str:
    text = _text(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _is_records(prediction) -> bool:
    return isinstance(prediction, (list, tuple)) and bool(prediction) and all(
        isinstance(row, dict) for row in prediction)


def _plain(value):
    """A value for json.dumps: numpy scalars and arrays as Python ones, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _record_cell(value) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return _cell(json.dumps(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return _cell(value)


def _records_csv(records) -> bytes:
    """One line per record, one column per key: keys in the order they first appear."""
    keys = list(dict.fromkeys(key for record in records for key in record))
    return ("\n".join(",".join(_record_cell(record.get(key)) for key in keys) for record in records)
            + "\n").encode()


def _values(prediction) -> np.ndarray:
    array = np.asarray(prediction.values if isinstance(prediction, Probabilities) else prediction)
    return array.reshape(1) if array.ndim == 0 else array


def encode_csv(prediction) -> bytes:
    """One line per row; several values (or class probabilities, in class order) comma-separated."""
    if _is_records(prediction):
        return _records_csv(prediction)
    array = _values(prediction)
    rows = array.tolist()
    if array.ndim == 1:
        if array.dtype.kind in "biuf":
            return ("\n".join(map(str, rows)) + "\n").encode()
        try:
            text = "\n".join(rows)  # labels are text already, as a rule
        except TypeError:
            text = "\n".join(map(_text, rows))
        # Labels rarely need quoting: check the joined text once instead of every cell.
        if "," in text or '"' in text or "\r" in text or text.count("\n") != len(rows) - 1:
            text = "\n".join(map(_cell, rows))
        return (text + "\n").encode()
    return ("\n".join(",".join(map(_cell, row)) for row in rows) + "\n").encode()


def _json_rows(prediction) -> list:
    """Rows as JSON values: a label or value, a list of values, {class: probability}, a record."""
    if _is_records(prediction):
        return _plain(list(prediction))
    array = _values(prediction)
    rows = array.tolist()
    if array.dtype.kind not in "biuUS" and not (array.dtype.kind == "f" and np.isfinite(array).all()):
        rows = _plain(rows)  # NaN as null; objects as JSON values
    if isinstance(prediction, Probabilities):
        names = [str(c) for c in prediction.classes]
        return [dict(zip(names, row, strict=True)) for row in rows]
    return rows


def encode_json(prediction) -> bytes:
    """{"predictions": [...]}: one entry per input row."""
    return json.dumps({"predictions": _json_rows(prediction)}, allow_nan=False).encode()


def encode_jsonlines(prediction) -> bytes:
    """One JSON value per line, in input order."""
    return ("\n".join(json.dumps(row, allow_nan=False) for row in _json_rows(prediction)) + "\n").encode()


ENCODERS: dict[str, Callable[[object], bytes]] = {
    "text/csv": encode_csv,
    "application/json": encode_json,
    "application/jsonlines": encode_jsonlines,
}


def encode(prediction, accept: str) -> bytes:
    encoder = ENCODERS.get(accept)
    if encoder is None:
        raise NotAcceptable(f"cannot answer in {quoted(accept)}; this model answers in {', '.join(ENCODERS)}")
    return encoder(prediction)


def _lines(body: bytes) -> int:
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def count(body: bytes, accept: str) -> int | None:
    """How many answers a response body holds in the `accept` type, or None for a type or a
    shape this module does not know (the server then does not check)."""
    if accept == "text/csv":
        if b'"' not in body:
            return _lines(body)
        try:
            return sum(1 for _ in csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
        except (UnicodeDecodeError, csv.Error):
            return None
    if accept in ("application/jsonlines", "application/x-jsonlines"):
        return _lines(body)
    if accept == "application/json":
        try:
            value = json.loads(body)
        except ValueError:
            return None
        if isinstance(value, dict) and isinstance(value.get("predictions"), list):
            return len(value["predictions"])
        return len(value) if isinstance(value, list) else None
    return None
