"""The HTTP side of SageMaker's serving contract, built around the four inference hooks.

`invoke` is the pipeline as a plain function (input_fn -> predict_fn -> output_fn), tested
without a server; `create_app` is the thin Flask shell: /ping, /invocations and
/execution-parameters, and one handler that turns an `HTTPError` into a short text answer.
The model is loaded when the app is created (in gunicorn's master, before the workers fork).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

from . import estimators, inference, media, settings
from .errors import BadRequest, HTTPError, ModelNotReady, PayloadTooLarge
from .inference import ModelSchema

log = logging.getLogger("serve")

DESCRIPTION_FILE = "model.json"


@dataclass(frozen=True)
class Hooks:
    model_fn: Callable[[str], Any]
    input_fn: Callable[[bytes, str], Any]
    predict_fn: Callable[[Any, Any], Any]
    output_fn: Callable[[Any, str], bytes | str]
    accept_types: tuple[str, ...]  # what output_fn can produce


@dataclass
class LoadedModel:
    model: Any = None
    error: str | None = None
    schema: ModelSchema | None = None

    @property
    def ready(self) -> bool:
        return self.error is None


def load_model(hooks: Hooks, model_dir: Path) -> LoadedModel:
    started = time.monotonic()
    try:
        model = hooks.model_fn(str(model_dir))
    except Exception as error:  # noqa: BLE001 - reported, and /ping answers 503
        reason = f"{type(error).__name__}: {error}"
        log.exception("could not load the model from %s: %s; /ping will answer 503", model_dir, reason)
        return LoadedModel(error=reason)
    log.info("model loaded from %s in %.2fs", model_dir, time.monotonic() - started)
    try:
        estimators.memoize_introspection(model)
    except Exception as error:  # noqa: BLE001 - only a speed-up: serve the model as it is
        log.warning("serving the model without memoized scikit-learn tags (%s: %s)", type(error).__name__, error)
    return LoadedModel(model=model, schema=ModelSchema.of(model, _description(model_dir)))


def _description(model_dir: Path) -> dict | None:
    """model.json as algo/train writes it (feature names, text columns), when it is there."""
    path = Path(model_dir) / DESCRIPTION_FILE
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError) as error:
        log.warning("ignoring %s: %s", path, error)
        return None


def invoke(hooks: Hooks, loaded: LoadedModel, body: bytes, content_type: str | None,
           accept: str | None, config: settings.Serving, custom_attributes: str | None = None,
           ) -> tuple[bytes, str]:
    """One /invocations request: the response body and its media type, or an HTTPError."""
    if not loaded.ready:
        raise ModelNotReady("the model is not loaded; the server log says why")
    if len(body) > config.max_payload_bytes:
        raise PayloadTooLarge(f"the body is larger than the limit of {config.max_payload_mb} MB")
    if not body:
        raise BadRequest("the request body is empty; send one or more rows")
    answer_type = media.negotiate(accept, hooks.accept_types, config.default_accept)
    output_kind = inference.requested_output(custom_attributes, config.inference_output)
    data = inference.conform(hooks.input_fn(body, content_type), loaded.schema)
    token = inference.set_requested_output(output_kind)
    try:
        prediction = hooks.predict_fn(data, loaded.model)
    except ValueError as error:  # scikit-learn's word for input it cannot use
        raise BadRequest(f"the model cannot use this input: {error}") from None
    finally:
        inference.reset_requested_output(token)
    output = hooks.output_fn(prediction, answer_type)
    return (output.encode() if isinstance(output, str) else output), answer_type


def _text(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def configure_logging(level: int) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


def create_app(hooks: Hooks, config: settings.Serving | None = None,
               paths: settings.Paths | None = None) -> Flask:
    config = config or settings.serving()
    paths = paths or settings.paths()
    configure_logging(config.log_level)
    if config.default_accept not in hooks.accept_types:
        raise settings.SettingsError(
            f"{settings.DEFAULT_ACCEPT}={config.default_accept!r} is not one of {', '.join(hooks.accept_types)}"
        )
    loaded = load_model(hooks, paths.model)

    app = Flask("sagemaker_byo")
    app.config["MAX_CONTENT_LENGTH"] = None  # the limit is ours, with our message
    app.extensions["sagemaker_model"] = loaded

    @app.get("/ping")
    def ping() -> Response:
        if loaded.ready:
            return Response(status=200)
        return _text("the model is not loaded; the server log says why", 503)

    @app.post("/invocations")
    def invocations() -> Response:
        current = request._get_current_object()  # one lookup of the request, not one per use
        length = current.content_length
        if length is not None and length > config.max_payload_bytes:
            raise PayloadTooLarge(f"the body is larger than the limit of {config.max_payload_mb} MB")
        environ = current.environ  # the WSGI names of Content-Type, Accept and the custom attributes
        body, answer_type = invoke(
            hooks, loaded, current.get_data(cache=False), environ.get("CONTENT_TYPE"),
            environ.get("HTTP_ACCEPT"), config, environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"),
        )
        return Response(body, status=200, content_type=answer_type)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        body = {
            "MaxConcurrentTransforms": config.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": config.max_payload_mb,
        }
        return Response(json.dumps(body), status=200, mimetype="application/json")

    @app.errorhandler(HTTPError)
    def http_error(error: HTTPError) -> Response:
        # nginx logs successful invocations; a refused one is logged here, once, with its reason.
        level = logging.ERROR if error.status >= 500 else logging.WARNING
        log.log(level, "%s %s -> %d: %s", request.method, request.path, error.status, error.message)
        return _text(error.message, error.status)

    @app.errorhandler(WerkzeugHTTPException)
    def werkzeug_error(error: WerkzeugHTTPException) -> Response:
        if error.code == 404:
            return _text("no such route; this server answers /ping and /invocations", 404)
        if error.code == 405:
            # only the server's own routes get here, so the path is short and ours
            return _text(f"{request.method} is not allowed on {request.path}", 405)
        return _text(f"{error.name}: {error.description}", error.code or 400)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _text("internal error in the inference code; the server log has the details", 500)

    return app
