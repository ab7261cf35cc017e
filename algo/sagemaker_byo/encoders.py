"""Predictions to response bodies. One function per media type; `ENCODERS` maps one to the other.

A prediction is a 1-D array (one label or value per row), a 2-D array (several values per row),
or `Probabilities` (one value per class per row, classes in the model's order). Output rows are
in input order, one per line in CSV and JSON Lines, so batch transform's `AssembleWith=Line`
lines them up with the input.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from .errors import NotAcceptable, quoted
from .inference import Probabilities


def _text(value) -> str:
    """A label as text: text as it is (also a str subclass such as a str Enum), else str()."""
    return value if isinstance(value, str) else str(value)


def _cell(value) -> str:
    text = _text(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _values(prediction) -> np.ndarray:
    array = np.asarray(prediction.values if isinstance(prediction, Probabilities) else prediction)
    return array.reshape(1) if array.ndim == 0 else array


def encode_csv(prediction) -> bytes:
    """One line per row; several values (or class probabilities, in class order) comma-separated."""
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
    """Rows as JSON values: a label or value, a list of values, or {class: probability}."""
    rows = _values(prediction).tolist()
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
