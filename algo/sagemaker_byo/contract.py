"""What a model accepts as input, measured by calling it, and how each request is held to that.

`measure(model, sample)` establishes a model's `InputContract`: its columns in order, which hold
text, whether it takes a DataFrame (named columns) or an array, which columns accept a missing
value, and the dtype of its numbers (float32 or float64: what it was fitted on), by calling the
model's own `predict` on rows shaped as the server would send them (training rows, or rows made
from what the model knows of itself, with cells blanked). Nothing is inferred from the model's
class. `algo/train` saves the contract in model.json; the server measures a model that came
without one when it loads it.

`conform(rows, contract)` checks a decoded request against the contract and gives the model its
input in the form it takes; a row the model cannot take is a `BadRequest` naming row and column.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import AlgorithmError, BadRequest, quoted

log = logging.getLogger("contract")

BASE_ROWS = 4  # training rows each probe starts from
_TEXT_PROBE = "a"  # a text value to try in a column when nothing better is known
FLOAT64, FLOAT32 = "float64", "float32"
DTYPES = (FLOAT64, FLOAT32)  # a model.json without one: float64, what the server handed every model before


@dataclass(frozen=True)
class Column:
    name: str
    text: bool  # values stay text (categories, free text); otherwise numbers
    accepts_missing: bool


@dataclass(frozen=True)
class InputContract:
    """What the model takes. `columns` is None when nothing is known of its input (a model that
    exposes no feature count and came without model.json): requests then go to it as decoded."""

    columns: tuple[Column, ...] | None
    frame: bool  # the model takes a DataFrame with the columns' names; otherwise a 2-D array
    accepts_infinite: bool
    measured: bool  # established by calling the model; otherwise the model's own checks decide
    # The numbers' dtype: the one the model was fitted on (scikit-learn's KMeans predicts no other).
    dtype: str = FLOAT64

    @property
    def n_features(self) -> int | None:
        return len(self.columns) if self.columns is not None else None

    @property
    def names(self) -> tuple[str, ...] | None:
        return tuple(c.name for c in self.columns) if self.columns is not None else None

    @property
    def text_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns or () if c.text)

    @property
    def text_positions(self) -> tuple[int, ...]:
        """Where the text columns stand in a row (for CSV, whose cells do not say)."""
        return tuple(j for j, c in enumerate(self.columns or ()) if c.text)

    def as_json(self) -> dict:
        return {
            "columns": None if self.columns is None else [
                {"name": c.name, "text": c.text, "accepts_missing": c.accepts_missing} for c in self.columns],
            "frame": self.frame,
            "accepts_infinite": self.accepts_infinite,
            "measured": self.measured,
            "dtype": self.dtype,
        }

    @classmethod
    def from_json(cls, value: dict) -> InputContract:
        columns = value.get("columns")
        dtype = value.get("dtype", FLOAT64)
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        return cls(
            columns=None if columns is None else tuple(
                Column(str(c["name"]), bool(c["text"]), bool(c["accepts_missing"])) for c in columns),
            frame=bool(value["frame"]),
            accepts_infinite=bool(value["accepts_infinite"]),
            measured=bool(value["measured"]),
            dtype=dtype,
        )


UNKNOWN = InputContract(columns=None, frame=False, accepts_infinite=True, measured=False)


# --- shaping rows as the model takes them (shared by measuring and serving) ---

def model_input(frame: pd.DataFrame, contract: InputContract) -> Any:
    """Typed rows (numbers as float64, text as objects) in the form the model takes, their numbers
    in the contract's dtype (`conform` has refused any that overflow it)."""
    if contract.dtype != FLOAT64:
        frame = frame.astype({c.name: contract.dtype for c in contract.columns if not c.text})
    if contract.frame:
        return frame
    if contract.text_columns:
        return frame.to_numpy(dtype=object)
    return frame.to_numpy(dtype=contract.dtype)


def _refusal(model: Any, data: Any) -> str | None:
    """Why the model's predict does not take this input (None: it does), with every check of its
    own switched on."""
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        try:
            import sklearn
        except ImportError:  # pragma: no cover - the image always has it
            pass
        else:
            stack.enter_context(sklearn.config_context(assume_finite=False))
        try:
            answer = model.predict(data)
        except Exception as error:  # noqa: BLE001 - any refusal counts as "does not take this"
            return " ".join(f"{type(error).__name__}: {error}".split())[:300]
        if np.shape(answer)[:1] != (len(data),):
            return f"predict gave an answer of shape {np.shape(answer)} for {len(data)} rows"
        return None


def _predict(model: Any, data: Any) -> bool:
    return _refusal(model, data) is None


def _typed_frame(rows: list[list], names: list[str], text: set[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    for name in names:
        if name not in text:
            frame[name] = frame[name].astype(np.float64)
    return frame


def _base_rows(sample: pd.DataFrame, text: set[str]) -> list[list]:
    """A few training rows without missing cells (any gaps filled from their column)."""
    complete = sample.dropna()
    rows = complete if len(complete) else sample
    rows = rows.head(BASE_ROWS).copy()
    for name in rows.columns:
        column = sample[name].dropna()
        if rows[name].isna().any():
            rows[name] = rows[name].fillna(column.iloc[0] if len(column) else (_TEXT_PROBE if name in text else 0.0))
    return [[_as_text(v) if name in text else float(v) for name, v in zip(rows.columns, row, strict=True)]
            for row in rows.itertuples(index=False)]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else category_text(value)


def category_text(value: Any) -> Any:
    """A value of a text column as training read it from CSV: 1.0 as '1', text as it is."""
    if isinstance(value, str) or value is None or value != value:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _accepting(model, base: list[list], names: list[str], text: set[str], frame: bool, dtype: str,
               positions: list[int]) -> set[int]:
    """The columns among `positions` in which the model takes a missing value: one call with a
    row per column blanked; where that fails, each half again."""
    if not positions:
        return set()
    rows = []
    for k, j in enumerate(positions):
        row = list(base[k % len(base)])
        row[j] = np.nan
        rows.append(row)
    contract = InputContract(tuple(Column(n, n in text, True) for n in names), frame, True, True, dtype)
    if _predict(model, model_input(_typed_frame(rows, names, text), contract)):
        return set(positions)
    if len(positions) == 1:
        return set()
    middle = len(positions) // 2
    return (_accepting(model, base, names, text, frame, dtype, positions[:middle])
            | _accepting(model, base, names, text, frame, dtype, positions[middle:]))


def _measure_columns(model, base: list[list], names: list[str], text: set[str], frame: bool,
                     dtype: str) -> InputContract:
    accepting = _accepting(model, base, names, text, frame, dtype, list(range(len(names))))
    numeric = [j for j, n in enumerate(names) if n not in text]
    infinite = False
    if numeric:
        row = list(base[0])
        for j in numeric:
            row[j] = np.inf
        probe = InputContract(tuple(Column(n, n in text, True) for n in names), frame, True, True, dtype)
        infinite = _predict(model, model_input(_typed_frame([row], names, text), probe))
    return InputContract(tuple(Column(n, n in text, j in accepting) for j, n in enumerate(names)),
                         frame, infinite, True, dtype)


def _wants_frame(model, base: list[list], names: list[str], text: set[str],
                 dtype: str) -> tuple[bool | None, dict[str, str]]:
    """DataFrame or array: what the model was fitted on where it says so (scikit-learn's
    feature_names_in_), else whichever its predict takes; None when it takes neither, with why
    (each form's refusal)."""
    fitted_on_frame = getattr(model, "feature_names_in_", None) is not None
    refusals = {}
    for frame in (True,) if fitted_on_frame else (False, True):  # an array where both work: it costs less
        probe = InputContract(tuple(Column(n, n in text, True) for n in names), frame, True, True, dtype)
        refusal = _refusal(model, model_input(_typed_frame(base, names, text), probe))
        if refusal is None:
            return frame, {}
        refusals["a DataFrame" if frame else "an array"] = refusal
    return None, refusals


def sample_dtype(sample: pd.DataFrame) -> str:
    """The dtype a fit on `sample` gets its numbers in: float32 where numpy's common type of the
    numeric columns is float32 (the channel reader stores numbers as float32), else float64."""
    numeric = [getattr(t, "numpy_dtype", t) for t in sample.dtypes if pd.api.types.is_numeric_dtype(t)]
    try:
        return FLOAT32 if numeric and np.result_type(*numeric) == np.float32 else FLOAT64
    except TypeError:  # a dtype numpy does not know: scikit-learn would make it float64
        return FLOAT64


def measure(model: Any, sample: pd.DataFrame, dtype: str | None = None) -> InputContract:
    """The contract of a fitted model, measured on training rows (`sample`: the training
    features, columns named as the model knows them; text columns are those pandas read as text)
    given with their numbers in `dtype`, the dtype the fit got them in (by default the sample's
    own, `sample_dtype`). A model that does not predict them is an AlgorithmError naming why:
    the server could not use it either."""
    names = [str(c) for c in sample.columns]
    dtype = dtype or sample_dtype(sample)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    sample = sample.set_axis(names, axis=1)
    text = {n for n in names if not pd.api.types.is_numeric_dtype(sample[n].dtype)}
    base = _base_rows(sample, text)
    frame, refusals = _wants_frame(model, base, names, text, dtype)
    if frame is None:
        reasons = set(refusals.values())
        why = reasons.pop() if len(reasons) == 1 else "; ".join(f"as {form}, {r}" for form, r in refusals.items())
        raise AlgorithmError(f"the fitted model ({_kind(model)}) does not predict its own training rows (numbers "
                             f"as {dtype}, as it was fitted on them): {why}; a model the server could not use is "
                             f"not saved")
    return _measure_columns(model, base, names, text, frame, dtype)


def _kind(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        return f"{type(model).__name__} ending in {type(steps[-1][-1]).__name__}"
    return type(model).__name__


def _known_columns(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    count = getattr(model, "n_features_in_", None)
    if isinstance(count, (int, np.integer)) and count > 0:
        return [f"column_{j + 2}" for j in range(int(count))]  # headerless CSV: the target is column 1
    return None


def _text_hints(model: Any, names: list[str]) -> dict[str, Any]:
    """Columns a ColumnTransformer of the model routes to a fitted encoder or vectorizer, each
    with a value the encoder knows (a category, a word): candidates for text to try."""
    hints: dict[str, Any] = {}
    stack, seen = [model], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for step in getattr(obj, "steps", ()):
            stack.append(step[1])
        for _, transformer, columns in getattr(obj, "transformers_", ()):
            if isinstance(columns, str):
                columns = [columns]
            try:
                selected = [names[c] if isinstance(c, (int, np.integer)) else str(c) for c in columns]
            except (TypeError, IndexError):
                continue
            for j, name in enumerate(selected):
                value = _known_text(transformer, j)
                if value is not None:
                    hints[name] = value
    return hints


def _known_text(transformer: Any, position: int) -> Any:
    steps = [s[1] for s in getattr(transformer, "steps", ())] or [transformer]
    for step in steps:
        categories = getattr(step, "categories_", None)
        if categories is not None and position < len(categories):
            values = [c for c in categories[position] if isinstance(c, str)]
            if values:
                return values[0]
        vocabulary = getattr(step, "vocabulary_", None)
        if vocabulary:
            return next(iter(vocabulary))
    return None


def measure_loaded(model: Any, names: list[str] | None = None, text: list[str] | None = None) -> InputContract:
    """The contract of a model that came without one (trained elsewhere): its columns from the
    model itself (or `names` and `text` from an older model.json), then measured on rows made
    from what the model knows (zeros for numbers, known categories or words for text), numbers
    as float64, or as float32 where only those work (a KMeans fitted on float32)."""
    names = [str(n) for n in names] if names else _known_columns(model)
    if not names:
        return UNKNOWN
    hints = _text_hints(model, names)
    candidates = []
    if text is not None:
        candidates.append(set(map(str, text)))
    candidates += [set(hints), set(), set(names)]
    for text_columns in candidates:
        row = [hints.get(n, _TEXT_PROBE) if n in text_columns else 0.0 for n in names]
        for dtype in DTYPES if len(text_columns) < len(names) else DTYPES[:1]:
            frame, _ = _wants_frame(model, [row], names, text_columns, dtype)
            if frame is not None:
                return _measure_columns(model, [row], names, text_columns, frame, dtype)
    log.warning("the model does not predict rows made from its %d columns; its input is not checked", len(names))
    return InputContract(tuple(Column(n, False, True) for n in names),
                         getattr(model, "feature_names_in_", None) is not None, True, False)


# --- holding a request to the contract ---

def _where(row: int, position: int, contract: InputContract) -> str:
    name = contract.columns[position].name
    # Headerless names say nothing more: column_2 onwards after a target, column_1 onwards without one.
    named = "" if name in (f"column_{position + 2}", f"column_{position + 1}") else f" ({name})"
    return f"row {row + 1}, column {position + 1}{named}"


def _numbers(values: pd.Series) -> tuple[pd.Series, int | None]:
    if values.dtype.kind == "f":
        return values, None
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy()
    return numbers.astype(np.float64), (int(np.flatnonzero(bad)[0]) if bad.any() else None)


def _check_array(numbers: np.ndarray, contract: InputContract, positions: list[int]) -> None:
    """Missing and infinite values where the model refuses them (numbers: float64 columns)."""
    if np.isfinite(numbers).all():
        return
    if not contract.accepts_infinite:
        infinite = np.isinf(numbers)
        if infinite.any():
            row, k = np.argwhere(infinite)[0]
            raise BadRequest(f"{_where(row, positions[k], contract)} is infinite or too large; send finite numbers")
    refusing = [k for k, j in enumerate(positions) if not contract.columns[j].accepts_missing]
    if refusing:
        missing = np.isnan(numbers[:, refusing])
        if missing.any():
            row, k = np.argwhere(missing)[0]
            raise BadRequest(f"{_where(row, positions[refusing[k]], contract)} is missing; "
                             f"this model needs a value there")


def _in_dtype(numbers: np.ndarray, contract: InputContract, positions: list[int]) -> np.ndarray:
    """Numbers (float64, as decoded) checked and in the contract's dtype. A number float32 cannot
    hold is refused, never handed to the model as the infinity it would become."""
    if contract.dtype == FLOAT64:
        if contract.measured:
            _check_array(numbers, contract, positions)
        return numbers
    with np.errstate(over="ignore"):
        cast = numbers.astype(np.float32)
    if not np.isfinite(cast).all():  # else no number is missing, infinite or too large
        if contract.measured:
            _check_array(numbers, contract, positions)
        overflow = np.isinf(cast) & np.isfinite(numbers)
        if overflow.any():
            row, k = np.argwhere(overflow)[0]
            raise BadRequest(f"{_where(row, positions[k], contract)} is too large for the float32 numbers this model "
                             f"was trained on (over 3.4e38); send numbers within that")
    return cast


def _ordered(data: pd.DataFrame, contract: InputContract) -> pd.DataFrame:
    names = contract.names
    columns = [str(c) for c in data.columns]
    if names is None:
        raise BadRequest("this model was trained without feature names; send rows as lists of values "
                         "instead of named columns or records")
    repeated = sorted(c for c, times in Counter(columns).items() if times > 1)
    if repeated:  # picking one of them would shift values into the wrong columns
        raise BadRequest(f"feature {', '.join(quoted(n) for n in repeated[:5])} is named more than once")
    missing = [n for n in names if n not in columns]
    unknown = [c for c in columns if c not in names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(quoted(n) for n in missing[:5])}")
        if unknown:
            parts.append(f"unknown {', '.join(quoted(n) for n in unknown[:5])}")
        raise BadRequest(f"feature names do not match the model's ({'; '.join(parts)})")
    return data.set_axis(columns, axis=1)[list(names)]


def conform(data: Any, contract: InputContract) -> Any:
    """Decoded rows (a 2-D array, or a DataFrame of named columns) checked against the contract and
    shaped as the model takes them. Anything else, and any input of a model whose columns are
    unknown, is returned as it is."""
    if contract.columns is None or not isinstance(data, (np.ndarray, pd.DataFrame)):
        return data
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            return data
        if data.shape[1] != contract.n_features:
            raise BadRequest(f"row 1 has {data.shape[1]} values; the model takes {contract.n_features}")
        if data.dtype.kind == "f" and not contract.frame and not contract.text_columns:  # plain numbers
            return _in_dtype(data, contract, list(range(data.shape[1])))
        frame = pd.DataFrame(data, columns=list(contract.names))
    else:
        frame = _ordered(data, contract)
    if not contract.measured:  # nothing measured: the model's own checks decide
        frame = frame.infer_objects()
        return frame if contract.frame else frame.to_numpy()
    columns = {}
    numeric = []
    for j, column in enumerate(contract.columns):
        values = frame.iloc[:, j]
        if column.text:
            values = values.map(category_text)
            if not column.accepts_missing:
                missing = values.isna().to_numpy()
                if missing.any():
                    raise BadRequest(f"{_where(int(np.flatnonzero(missing)[0]), j, contract)} is missing; "
                                     f"this model needs a value there")
            columns[column.name] = values.astype(object)
            continue
        numbers, bad = _numbers(values)
        if bad is not None:
            raise BadRequest(f"{_where(bad, j, contract)}: {quoted(values.iloc[bad])} is not a number")
        columns[column.name] = numbers
        numeric.append(j)
    typed = pd.DataFrame(columns, index=range(len(frame)))
    if numeric:
        _in_dtype(typed.iloc[:, numeric].to_numpy(dtype=np.float64), contract, numeric)
    return model_input(typed, contract)
