"""SageMaker plumbing for a bring-your-own-algorithm container, and its public face for forks.

A fork imports only from here (`from sagemaker_byo import Algorithm, Param, tabular`): these
names are the stable surface, and the modules behind them may move without breaking a fork.

Training (`algo/algorithm.py`):
    Algorithm        one catalogue entry: typed hyperparameters and `build` or `fit`
    Param            a typed hyperparameter (type, default, low/high, choices, nullable, tasks)
    tabular          preprocessing for a table: text columns encoded, missing numbers imputed
    text_columns     the columns of a table that hold text
    UserError        a failure the user fixes (bad hyperparameter, bad data): the failure file says so
    AlgorithmError   a failure in the algorithm's own code

Serving (`algo/predictor.py`):
    Hooks, create_app          the Flask app built from the four hooks
    Invocation                 what a request asks for, passed to every hook
    BadRequest, NotAcceptable, UnsupportedMediaType
                               raise from a hook to answer 400, 406 or 415 with a message
    probabilities, Probabilities, PREDICTIONS, PROBABILITIES
                               class probabilities and the `output` custom attribute's values
    InputContract              what the model takes (`invocation.contract`)
    decode, DECODERS, decode_csv, decode_json, decode_jsonlines, decode_npy
    encode, ENCODERS, encode_csv, encode_json, encode_jsonlines
                               the codecs the default hooks use: a dict from media type to function

The layout behind this: `training/` (the training job), `serving/` (the HTTP server, with
multi-model endpoints in `serving/multimodel/`), and at this root only what both modes use
(`settings`, `errors`, `resources`, `contract`). Names resolve on first use, so importing one
mode's name never loads the other mode's libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it (relative to this package)
_PUBLIC = {
    "Algorithm": "training.algorithms",
    "tabular": "training.algorithms",
    "text_columns": "training.algorithms",
    "Param": "training.hyperparameters",
    "UserError": "errors",
    "AlgorithmError": "errors",
    "BadRequest": "errors",
    "NotAcceptable": "errors",
    "UnsupportedMediaType": "errors",
    "InputContract": "contract",
    "Hooks": "serving.pipeline",
    "create_app": "serving.app",
    "Invocation": "serving.invocation",
    "Probabilities": "serving.invocation",
    "probabilities": "serving.invocation",
    "PREDICTIONS": "serving.invocation",
    "PROBABILITIES": "serving.invocation",
    "decode": "serving.decoders",
    "DECODERS": "serving.decoders",
    "decode_csv": "serving.decoders",
    "decode_json": "serving.decoders",
    "decode_jsonlines": "serving.decoders",
    "decode_npy": "serving.decoders",
    "encode": "serving.encoders",
    "ENCODERS": "serving.encoders",
    "encode_csv": "serving.encoders",
    "encode_json": "serving.encoders",
    "encode_jsonlines": "serving.encoders",
}

__all__ = [  # a literal list, for tools that read it without running this module
    "Algorithm", "AlgorithmError", "BadRequest", "DECODERS", "ENCODERS", "Hooks", "InputContract",
    "Invocation", "NotAcceptable", "PREDICTIONS", "PROBABILITIES", "Param", "Probabilities",
    "UnsupportedMediaType", "UserError", "create_app", "decode", "decode_csv", "decode_json",
    "decode_jsonlines", "decode_npy", "encode", "encode_csv", "encode_json", "encode_jsonlines",
    "probabilities", "tabular", "text_columns",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and editors; at run time the names resolve lazily
    from .contract import InputContract
    from .errors import AlgorithmError, BadRequest, NotAcceptable, UnsupportedMediaType, UserError
    from .serving.app import create_app
    from .serving.decoders import DECODERS, decode, decode_csv, decode_json, decode_jsonlines, decode_npy
    from .serving.encoders import ENCODERS, encode, encode_csv, encode_json, encode_jsonlines
    from .serving.invocation import PREDICTIONS, PROBABILITIES, Invocation, Probabilities, probabilities
    from .serving.pipeline import Hooks
    from .training.algorithms import Algorithm, tabular, text_columns
    from .training.hyperparameters import Param
