"""What the inference hooks are given and give back: the request's options (`Invocation`), class
probabilities as a result type, and the count of rows and answers the server holds them to.

Every hook gets the `Invocation` explicitly: the negotiated answer type, the custom attributes,
whether probabilities were asked for, and the model's input contract (`contract.InputContract`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import contract as contracts
from ..errors import BadRequest, quoted
from . import decoders

PROBABILITIES = "probabilities"
PREDICTIONS = "predictions"


@dataclass
class Invocation:
    """One request to /invocations, as the hooks see it."""

    content_type: str  # as the client sent it, parameters included (missing means text/csv)
    accept: str  # the negotiated answer type: output_fn writes this
    custom_attributes: dict[str, str]  # X-Amzn-SageMaker-Custom-Attributes as key=value pairs
    output: str  # PREDICTIONS or PROBABILITIES
    contract: contracts.InputContract  # what the model takes
    # A large CSV or JSON Lines body reaches the hooks in chunks of whole lines: the index of this
    # chunk's first row in the body (0 for a body in one piece).
    first_row: int = 0
    # SageMaker's X-Amzn-SageMaker-Inference-Id, or the request id nginx gave a request without
    # one; None outside a request (an app built alone). The server's log lines carry it too.
    inference_id: str | None = None
    # The server's body limit in bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB), which also bounds what a
    # compressed body (Parquet) may unpack to; None outside a request.
    payload_limit: int | None = None

    @property
    def wants_probabilities(self) -> bool:
        """True when this request asked for class probabilities instead of labels."""
        return self.output == PROBABILITIES

    def decode(self, body: bytes, content_type: str) -> Any:
        """The body as rows (`decoders.decode`), told what the contract knows of the model's
        columns: how many, and which hold text (a CSV cell "007" stays text there)."""
        return decoders.decode(body, content_type, self.contract.n_features, self.contract.text_positions,
                               payload_limit=self.payload_limit)

    def conform(self, rows: Any) -> Any:
        """Decoded rows checked against the model's contract and shaped as the model takes them
        (`contract.conform`)."""
        return contracts.conform(rows, self.contract)


@dataclass(frozen=True)
class Probabilities:
    """One probability per class per row, classes in the model's order."""

    values: np.ndarray
    classes: tuple

    def __len__(self) -> int:
        return len(self.values)


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


def requested_output(attributes: dict[str, str], default: str) -> str:
    value = attributes.get("output", "").lower()
    if value in (PREDICTIONS, PROBABILITIES):
        return value
    if value:
        raise BadRequest(f"custom attribute output={quoted(value)}: use output=predictions or output=probabilities")
    return default


def probabilities(model: Any, data: Any) -> Probabilities:
    predict_proba = getattr(model, "predict_proba", None)
    if predict_proba is None:
        raise BadRequest(
            f"this model ({type(model).__name__}) cannot give probabilities; ask for predictions instead"
        )
    classes = getattr(model, "classes_", None)
    values = predict_proba(data)
    if isinstance(values, list):  # a multi-output classifier: a table per target, not a row per row
        raise BadRequest(f"this model ({type(model).__name__}) has {len(values)} targets, and its probabilities "
                         f"are one table per target; ask for predictions instead")
    values = np.asarray(values)
    names = tuple(c.item() if isinstance(c, np.generic) else c for c in classes) if classes is not None \
        else tuple(range(np.shape(values)[1]))
    return Probabilities(values, names)


def count(value: Any) -> int | None:
    """How many rows (or answers) a hook's value holds: its length, or None where it has none
    (a custom hook's dict, say), which the server then does not check."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return shape[0] if shape else 1
    if isinstance(value, (list, tuple, Probabilities)):
        return len(value)
    return None
