"""Hyperparameters: decode SageMaker's strings tolerantly, then check them against a typed schema.

SageMaker hands every value over as a string; the Python SDK sometimes JSON-encodes it first
("\\"gini\\"", "5", "null"). `decode` undoes both, `Schema.parse` checks types, ranges and
choices and fills in defaults, and every problem is a `UserError` that names the allowed values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

# Keys SageMaker or the SDK add on their own; a strict schema must not reject them.
IGNORED_PREFIXES = ("sagemaker_", "_")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null", ""}


def decode(raw: Any) -> Any:
    """One value as SageMaker delivers it (a string, possibly JSON-encoded) to a Python value."""
    value = raw
    # At most two rounds: the SDK encodes once, a pipeline tool may have encoded again.
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            break
    return value


def _decode_text(raw: Any) -> Any:
    """Like `decode`, but only peels JSON string layers: '"1.10"' stays '1.10', not 1.1."""
    value = raw
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            inner = json.loads(value)
        except ValueError:
            break
        if isinstance(inner, (str, list, dict)) or inner is None:
            value = inner  # lists and objects are refused by the str converter
        else:
            break
    return value


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, default, and what values are allowed."""

    kind: type  # int, float, str or bool
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    help: str = ""
    # The tasks the parameter applies to ("classification", "regression"); empty: every task.
    tasks: tuple[str, ...] = ()

    def applies_to(self, task: str) -> bool:
        return not self.tasks or task in self.tasks

    def describe(self) -> str:
        if self.choices:
            allowed = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is bool:
            allowed = "true or false"
        else:
            noun = {int: "an integer", float: "a number", str: "a string"}[self.kind]
            bounds = []
            if self.low is not None:
                bounds.append(f">= {_fmt(self.low)}")
            if self.high is not None:
                bounds.append(f"<= {_fmt(self.high)}")
            allowed = noun + (" " + " and ".join(bounds) if bounds else "")
        if self.nullable:
            allowed += " (or null)"
        return allowed

    def coerce(self, name: str, raw: Any) -> Any:
        value = _decode_text(raw) if self.kind is str else decode(raw)
        if isinstance(value, str) and value.strip().lower() in _NONE and self.nullable:
            return None
        if value is None:
            if self.nullable:
                return None
            raise self._bad(name, raw)
        try:
            converted = _CONVERTERS[self.kind](value)
        except (TypeError, ValueError, OverflowError):
            raise self._bad(name, raw) from None
        if self.choices and converted not in self.choices:
            raise self._bad(name, raw)
        if self.low is not None and converted < self.low:
            raise self._bad(name, raw)
        if self.high is not None and converted > self.high:
            raise self._bad(name, raw)
        return converted

    def _bad(self, name: str, raw: Any) -> UserError:
        return UserError(f"hyperparameter '{name}' must be {self.describe()}, got {raw!r}")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, str):
        value = value.strip()
        try:
            return int(value)
        except ValueError:
            value = float(value)  # "5.0" from a tuning job's integer range
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not a whole number")
        return int(value)
    if isinstance(value, int):
        return value
    raise TypeError(type(value).__name__)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip())
    else:
        raise TypeError(type(value).__name__)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


def _to_str(value: Any) -> str:
    if isinstance(value, bool):  # "true" decoded to True; give the user's spelling back
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TypeError(type(value).__name__)
    return str(value).strip()


_CONVERTERS = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str}


@dataclass(frozen=True)
class Schema:
    params: dict[str, Param] = field(default_factory=dict)

    def names(self) -> Iterable[str]:
        return sorted(self.params)

    def parse(self, raw: dict[str, Any], context: str = "") -> dict[str, Any]:
        """Typed values for every parameter of the schema, defaults filled in. `context` (such as
        "algorithm 'linear'") is named when a hyperparameter is unknown."""
        if not isinstance(raw, dict):
            raise UserError("hyperparameters.json must hold a JSON object of name-value pairs")
        unknown = sorted(
            name for name in raw if name not in self.params and not name.startswith(IGNORED_PREFIXES)
        )
        if unknown:
            where = f" for {context}" if context else ""
            raise UserError(
                f"unknown hyperparameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(n) for n in unknown)}{where}; allowed: {', '.join(self.names())}"
            )
        values = {name: param.default for name, param in self.params.items()}
        for name, value in raw.items():
            if name in self.params:
                values[name] = self.params[name].coerce(name, value)
        return values
