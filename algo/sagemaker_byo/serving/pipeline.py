"""The serving pipeline as plain functions, built around the four inference hooks.

`invoke` is one request (input_fn -> predict_fn -> output_fn), tested without a server;
`invoke_in_chunks` scores a large body a chunk of lines at a time. `load_model` loads the model
through `model_fn` (in gunicorn's master, before the workers fork), or with
MODEL_SERVER_MODEL_FORMAT=skops loads model.skops itself (persistence.py), and reads its input
contract from model.json or, for a model that came without one, measures it. The HTTP shell around
this is app.py.

One row in, one answer out: `invoke` counts the rows `input_fn` gives and the answers of
`predict_fn` and `output_fn`, and refuses to answer (500, naming the hook) rather than send
answers that do not line up with the rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract as contracts
from .. import persistence, resources, settings
from ..errors import BadRequest, HookError, HTTPError, ModelNotReady, PayloadTooLarge, missing_library
from . import encoders, estimators, media, metrics, streaming
from . import invocation as invocations
from .invocation import Invocation

log = logging.getLogger("serve")

DESCRIPTION_FILE = "model.json"
ERROR_TEXT_LIMIT = 300  # characters of a hook's ValueError quoted back to the client


@dataclass(frozen=True)
class Hooks:
    model_fn: Callable[[str], Any]
    input_fn: Callable[[bytes, str, Invocation], Any]
    predict_fn: Callable[[Any, Any, Invocation], Any]
    output_fn: Callable[[Any, str, Invocation], bytes | str]
    accept_types: tuple[str, ...]  # what output_fn can produce
    # The fork's own classes a model.skops may hold ("module.Class"), for MODEL_SERVER_MODEL_FORMAT=skops
    trusted_types: tuple[str, ...] = ()


@dataclass
class LoadedModel:
    model: Any = None
    error: str | None = None
    contract: contracts.InputContract = contracts.UNKNOWN

    @property
    def ready(self) -> bool:
        return self.error is None


def load_model(hooks: Hooks, model_dir: Path, threads: int | None = None,
               model_format: str = "joblib") -> LoadedModel:
    """The model of `model_dir` through `model_fn` (or, in the skops `model_format`, model.skops with
    only trusted types: `model_fn` could unpickle, so it is not called), with its input contract;
    given `threads`, any `n_jobs` that would use more threads than that per worker is lowered to it."""
    started = time.monotonic()
    try:
        if model_format == "skops":
            model = persistence.load_skops(model_dir, hooks.trusted_types)
        else:
            model = hooks.model_fn(str(model_dir))
    except Exception as error:  # noqa: BLE001 - reported, and /ping answers 503
        missing = missing_library(error)
        hook = "model_fn" if model_format != "skops" else persistence.SKOPS_FILE
        reason = f"{hook} needs a library: {missing}" if missing else f"{type(error).__name__}: {error}"
        log.exception("could not load the model from %s: %s", model_dir, reason)
        metrics.recorder().model_load(time.monotonic() - started, ready=False)
        return LoadedModel(error=reason)
    log.info("model loaded from %s%s in %.2fs", model_dir,
             f" ({persistence.SKOPS_FILE}, trusted types only)" if model_format == "skops" else "",
             time.monotonic() - started)
    if threads is not None:
        lowered = resources.limit_n_jobs(model, threads)
        if lowered:
            log.info("predicting with %s=%d, this worker's share of the CPUs", ", ".join(lowered), threads)
    contract = input_contract(model, _description(model_dir))
    try:
        estimators.memoize_introspection(model)
    except Exception as error:  # noqa: BLE001 - only a speed-up: serve the model as it is
        log.warning("serving the model without memoized scikit-learn tags (%s: %s)", type(error).__name__, error)
    metrics.recorder().model_load(time.monotonic() - started, ready=True)
    return LoadedModel(model=model, contract=contract)


def input_contract(model: Any, description: dict | None) -> contracts.InputContract:
    """The contract algo/train measured and saved in model.json, or, for a model without one
    (trained elsewhere, or by an older version), the one measured now by calling the model."""
    saved = (description or {}).get("input")
    if isinstance(saved, dict):
        try:
            return contracts.InputContract.from_json(saved)
        except (KeyError, TypeError, ValueError) as error:
            log.warning("ignoring the input contract in %s (%s); measuring the model instead",
                        DESCRIPTION_FILE, error)
    started = time.monotonic()
    try:
        contract = contracts.measure_loaded(
            model, (description or {}).get("feature_names"), (description or {}).get("categorical_features"))
    except Exception as error:  # noqa: BLE001 - the model's own checks then decide
        log.warning("could not measure the model's input (%s: %s); requests go to it unchecked",
                    type(error).__name__, error)
        return contracts.UNKNOWN
    log.info("input contract measured in %.2fs: %s", time.monotonic() - started, _summary(contract))
    return contract


def _summary(contract: contracts.InputContract) -> str:
    if contract.columns is None:
        return "the model does not say what it takes; requests go to it as decoded"
    refusing = [c.name for c in contract.columns if not c.accepts_missing]
    return (f"{contract.n_features} columns ({len(contract.text_columns)} of text), "
            f"{'a DataFrame' if contract.frame else 'an array'}, numbers as {contract.dtype}, "
            f"missing values refused in {len(refusing)}"
            f"{'' if contract.measured else ' (not measured: the model checks its own input)'}")


def _description(model_dir: Path) -> dict | None:
    """model.json as algo/train writes it (input contract, feature names), when it is there."""
    path = Path(model_dir) / DESCRIPTION_FILE
    try:
        value = json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError) as error:
        log.warning("ignoring %s: %s", path, error)
        return None
    return value if isinstance(value, dict) else None


def _short(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."


def begin(hooks: Hooks, loaded: LoadedModel, content_type: str | None, accept: str | None,
          config: settings.Serving, custom_attributes: str | None = None,
          inference_id: str | None = None) -> Invocation:
    """What a request asks for, before its body is read: the invocation the hooks get."""
    if not loaded.ready:
        raise ModelNotReady("the model is not loaded; the server log says why")
    answer_type = media.negotiate(accept, hooks.accept_types, config.default_accept)
    attributes = invocations.custom_attributes(custom_attributes)
    return Invocation(content_type or "text/csv", answer_type, attributes,
                      invocations.requested_output(attributes, config.inference_output), loaded.contract,
                      inference_id=inference_id, payload_limit=config.max_payload_bytes)


def answer(hooks: Hooks, loaded: LoadedModel, body: bytes, invocation: Invocation) -> tuple[bytes, int | None]:
    """input_fn -> predict_fn -> output_fn over one body (or one chunk of a large one): the answer
    and how many rows it answers (None when input_fn gave something without a length)."""
    clock = time.perf_counter
    started = clock()
    try:
        data = hooks.input_fn(body, invocation.content_type, invocation)
    except ValueError as error:  # input_fn owns decoding: a body it cannot read is the client's
        raise BadRequest(f"the body cannot be read: {_short(error)}") from None
    rows = invocations.count(data)
    decoded = clock()
    try:
        # scikit-learn's own finite check stays on: `conform` cannot make it redundant (a number
        # finite as float64 overflows the float32 a tree casts to, or a scaler's output).
        prediction = hooks.predict_fn(data, loaded.model, invocation)
    except ValueError as error:  # scikit-learn's word for input it cannot use
        raise BadRequest(f"the model cannot use this input: {_short(error)}") from None
    _check_count("predict_fn", rows, invocations.count(prediction))
    predicted = clock()
    output = hooks.output_fn(prediction, invocation.accept, invocation)
    output = output.encode() if isinstance(output, str) else output
    metrics.recorder().stages_timed(decoded - started, predicted - decoded, clock() - predicted)
    if rows is not None:
        _check_count("output_fn", rows, encoders.count(output, invocation.accept))
    return output, rows


def invoke(hooks: Hooks, loaded: LoadedModel, body: bytes, content_type: str | None,
           accept: str | None, config: settings.Serving, custom_attributes: str | None = None,
           inference_id: str | None = None) -> tuple[bytes, str]:
    """One /invocations request: the response body and its media type, or an HTTPError."""
    invocation = begin(hooks, loaded, content_type, accept, config, custom_attributes, inference_id)
    return answer_whole(hooks, loaded, body, invocation, config), invocation.accept


def answer_whole(hooks: Hooks, loaded: LoadedModel, body: bytes, invocation: Invocation,
                 config: settings.Serving) -> bytes:
    """A body read in one piece: held to the payload limit, refused when empty, then answered."""
    if len(body) > config.max_payload_bytes:
        raise PayloadTooLarge(f"the body is larger than the limit of {config.max_payload_mb} MB")
    if not body:
        raise BadRequest("the request body is empty; send one or more rows")
    output, rows = answer(hooks, loaded, body, invocation)
    metrics.recorder().answered(rows)
    return output


def streams(invocation: Invocation, length: int | None, config: settings.Serving) -> bool:
    """Whether a body is scored in chunks: a CSV or JSON Lines body larger than one chunk."""
    return (bool(config.chunk_bytes) and length is not None and length > config.chunk_bytes
            and media.parse(invocation.content_type)[0] in streaming.STREAMED_TYPES)


JSON_PREDICTIONS = (b'{"predictions": [', b"]}")  # encoders' JSON answer, joined across chunks


def invoke_in_chunks(hooks: Hooks, loaded: LoadedModel, stream, length: int, invocation: Invocation,
                     config: settings.Serving) -> streaming.Answers:
    """A large body, a chunk of lines at a time (streaming.py): every answer, in a spooled file,
    or an HTTPError naming the row counted from the start of the body."""
    csv = media.parse(invocation.content_type)[0] == "text/csv"
    as_json = invocation.accept == "application/json"
    answers = streaming.Answers()
    first_row, counted = 0, True
    try:
        for chunk in streaming.chunks(stream, length, config.chunk_bytes, csv):
            part = dataclasses.replace(invocation, first_row=first_row)
            try:
                output, rows = answer(hooks, loaded, chunk, part)
            except HTTPError as error:
                if counted:
                    error.message = streaming.renumber(error.message, first_row)
                raise
            if as_json:
                output = _json_items(output, first=not answers.size)
            answers.write(output)
            counted = counted and rows is not None
            first_row += rows or 0
        if as_json:
            answers.write(JSON_PREDICTIONS[0] + JSON_PREDICTIONS[1] if not answers.size else JSON_PREDICTIONS[1])
    except BaseException:
        answers.close()
        raise
    log.info("answered a body of %d bytes in chunks of %d MB: %d rows", length, config.chunk_mb, first_row)
    record = metrics.recorder()
    record.chunked_body()
    record.answered(first_row if counted else None)
    return answers


def _json_items(output: bytes, first: bool) -> bytes:
    """A chunk's JSON answer as items to join: the first keeps its opening, none its closing."""
    prefix, suffix = JSON_PREDICTIONS
    text = output.strip()
    if not (text.startswith(prefix) and text.endswith(suffix)):
        raise HookError("output_fn's JSON answer is not {\"predictions\": [...]}, so the answers of a body "
                        "scored in chunks cannot be joined; answer text/csv or JSON Lines, or set "
                        f"{settings.CHUNK_MB}=0")
    items = text[len(prefix):-len(suffix)]
    if first:
        return prefix + items
    return (b", " + items) if items else b""


def _check_count(hook: str, rows: int | None, answers: int | None) -> None:
    if rows is not None and answers is not None and answers != rows:
        raise HookError(f"{hook} gave {answers} answers for {rows} rows; refusing to send answers that do not "
                        f"line up with the rows (a bug in the inference code)")
