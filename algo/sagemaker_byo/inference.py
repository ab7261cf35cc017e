"""What the inference hooks work with: the model's input schema, the request's options, and
probabilities as a result type.

`ModelSchema` is read once from the loaded model (generic scikit-learn attributes, no estimator
class is special-cased) and `conform` checks and arranges each request's input against it.
`wants_probabilities()` tells `predict_fn` what the current request asked for.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import BadRequest, quoted

PROBABILITIES = "probabilities"
PREDICTIONS = "predictions"


@dataclass(frozen=True)
class ModelSchema:
    n_features: int | None
    feature_names: tuple[str, ...] | None
    names_required: bool  # the model was fitted on named columns: it takes a DataFrame
    categorical: frozenset[str]  # columns of text (categories); the others are numbers
    allow_nan: bool
    classes: tuple | None

    @classmethod
    def of(cls, model: Any, description: dict | None = None) -> ModelSchema:
        """From the model's own attributes, and the description train saved beside it (model.json)."""
        description = description or {}
        names = getattr(model, "feature_names_in_", None)
        if names is None:
            names = description.get("feature_names")
        classes = getattr(model, "classes_", None)
        n_features = getattr(model, "n_features_in_", None)
        return cls(
            n_features=n_features if n_features is not None else (len(names) if names is not None else None),
            feature_names=tuple(str(n) for n in names) if names is not None else None,
            names_required=getattr(model, "feature_names_in_", None) is not None,
            categorical=frozenset(map(str, description.get("categorical_features") or ())),
            allow_nan=bool(description.get("accepts_missing_values", _allows_nan(model))),
            classes=tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
            if classes is not None else None,
        )


def _allows_nan(model: Any) -> bool:
    try:
        return bool(model.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        return True  # not a scikit-learn estimator: let the model decide


def _category(value):
    """A category as training read it from CSV: text as it is, 1.0 as '1', missing as missing."""
    if isinstance(value, str) or value is None or value != value:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _typed(frame: pd.DataFrame, schema: ModelSchema) -> pd.DataFrame:
    """Text columns of the model stay text; every other column must hold numbers."""
    columns = {}
    for position, name in enumerate(frame.columns):
        values = frame[name]
        if str(name) in schema.categorical:
            columns[name] = values.map(_category)
            continue
        if values.dtype.kind == "f":
            columns[name] = values
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = (numbers.isna() & values.notna()).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = str(values.iloc[row])
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
            raise BadRequest(f"row {row + 1}, column {position + 1}: {shown!r} is not a number")
        columns[name] = numbers.astype(np.float64)
    return pd.DataFrame(columns, index=frame.index)


def _check_values(numbers: np.ndarray, schema: ModelSchema, columns: list[int] | None = None) -> None:
    if numbers.dtype.kind != "f" or np.isfinite(numbers).all():
        return
    # The server runs scikit-learn with assume_finite=True (its own check costs more than the
    # prediction of a small tree), so this check is the one that counts.
    infinite = np.isinf(numbers)
    if infinite.any():
        row, column = np.argwhere(infinite)[0]
        column = columns[column] if columns else column
        raise BadRequest(f"row {row + 1}, column {column + 1} is infinite or too large; send finite numbers")
    if not schema.allow_nan:
        row, column = np.argwhere(np.isnan(numbers))[0]
        column = columns[column] if columns else column
        raise BadRequest(f"row {row + 1}, column {column + 1} is missing; this model needs every value")


def conform(data: Any, schema: ModelSchema) -> Any:
    """Check the input against the model's schema and shape it as the model takes it: numbers
    checked and finite, text only in the model's text columns, named columns in the model's order."""
    if isinstance(data, pd.DataFrame):
        if schema.feature_names is None:
            raise BadRequest(
                "this model was trained without feature names; send rows as lists of values instead of "
                "named columns or records"
            )
        missing = [n for n in schema.feature_names if n not in data.columns]
        unknown = [str(c) for c in data.columns if c not in schema.feature_names]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(map(repr, missing))}")
            if unknown:
                parts.append(f"unknown {', '.join(map(repr, unknown))}")
            raise BadRequest(f"feature names do not match the model's ({'; '.join(parts)})")
        frame = data[list(schema.feature_names)]
    elif isinstance(data, np.ndarray) and data.ndim == 2:
        if schema.n_features is not None and data.shape[1] != schema.n_features:
            raise BadRequest(f"each row needs {schema.n_features} features, got {data.shape[1]}")
        if data.dtype.kind == "f" and not schema.names_required:  # the fast path: plain numbers
            _check_values(data, schema)
            return data
        frame = pd.DataFrame(data, columns=list(schema.feature_names or range(data.shape[1])))
    else:
        return data
    frame = _typed(frame, schema)
    numeric = [i for i, name in enumerate(frame.columns) if str(name) not in schema.categorical]
    _check_values(frame.iloc[:, numeric].to_numpy(dtype=np.float64), schema, numeric)
    if schema.names_required:
        return frame
    return frame.to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class Probabilities:
    """One probability per class per row, classes in the model's order."""

    values: np.ndarray
    classes: tuple


_output: ContextVar[str] = ContextVar("sagemaker_output", default=PREDICTIONS)


def custom_attributes(header: str | None) -> dict[str, str]:
    """`X-Amzn-SageMaker-Custom-Attributes` as key=value pairs (separated by , or ;)."""
    if not header:
        return {}
    pairs = {}
    for part in header.replace(";", ",").split(","):
        key, sep, value = part.partition("=")
        if sep:
            pairs[key.strip().lower()] = value.strip()
    return pairs


def requested_output(header: str | None, default: str) -> str:
    value = custom_attributes(header).get("output", "").lower()
    if value in (PREDICTIONS, PROBABILITIES):
        return value
    if value:
        raise BadRequest(f"custom attribute output={quoted(value)}: use output=predictions or output=probabilities")
    return default


def set_requested_output(output: str):
    return _output.set(output)


def reset_requested_output(token) -> None:
    _output.reset(token)


def wants_probabilities() -> bool:
    """True when this request asked for class probabilities instead of labels."""
    return _output.get() == PROBABILITIES


def probabilities(model: Any, data: Any) -> Probabilities:
    predict_proba = getattr(model, "predict_proba", None)
    if predict_proba is None:
        raise BadRequest(
            f"this model ({type(model).__name__}) cannot give probabilities; ask for predictions instead"
        )
    classes = getattr(model, "classes_", None)
    values = predict_proba(data)
    names = tuple(c.item() if isinstance(c, np.generic) else c for c in classes) if classes is not None \
        else tuple(range(np.shape(values)[1]))
    return Probabilities(np.asarray(values), names)
