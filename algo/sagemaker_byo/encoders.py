"""Predictions to response bodies. One function per media type; `ENCODERS` maps one to the other.

A prediction is a 1-D array (one label or value per row) or a 2-D array (one row of values per
input row, such as class probabilities). Output rows are in input order, one per line, so batch
transform's `AssembleWith=Line` lines them up with the input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import NotAcceptable


def _cell(value) -> str:
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def encode_csv(prediction) -> bytes:
    array = np.asarray(prediction)
    if array.ndim == 0:
        array = array.reshape(1)
    rows = array.tolist()
    if array.ndim == 1:
        if array.dtype.kind in "biuf":
            return ("\n".join(map(str, rows)) + "\n").encode()
        return ("\n".join(map(_cell, rows)) + "\n").encode()
    return ("\n".join(",".join(map(_cell, row)) for row in rows) + "\n").encode()


ENCODERS: dict[str, Callable[[object], bytes]] = {
    "text/csv": encode_csv,
}


def encode(prediction, accept: str) -> bytes:
    encoder = ENCODERS.get(accept)
    if encoder is None:
        raise NotAcceptable(f"cannot answer in {accept!r}; this model answers in {', '.join(ENCODERS)}")
    return encoder(prediction)
