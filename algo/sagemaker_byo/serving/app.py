"""The HTTP side of SageMaker's serving contract: the thin Flask shell around the pipeline.

`create_app` loads the model and serves /ping, /invocations and /execution-parameters (and the
multi-model routes of multimodel/routes.py when the endpoint is one), with one handler that
turns an `HTTPError` into a short text answer. What a request does is pipeline.py's. Every
request is counted and timed (metrics.py), and the lines it logs carry its inference id (logs.py).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import traceback

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

from .. import settings
from ..errors import HTTPError, PayloadTooLarge, missing_library, quoted
from . import logs, metrics
from .pipeline import Hooks, LoadedModel, answer_whole, begin, invoke_in_chunks, load_model, streams

log = logging.getLogger("serve")

_IMPORTLIB = importlib.__file__.rsplit("/", 1)[0] + "/"
APP_LOAD_ERROR = 4  # gunicorn's own exit code for an app that cannot be imported: it halts, no retries


def import_app(module: str = "predictor") -> Flask:
    """`module.app`, imported for wsgi.py. A fork's predictor.py that cannot be imported (a syntax
    error, a library missing from the image, an exception at its top level) stops the server with
    one line naming the file, the error and the fix, and the traceback of the fork's own frames,
    instead of gunicorn's traceback through its loader."""
    try:
        return importlib.import_module(module).app
    except Exception as error:  # noqa: BLE001 (any failure of the fork's module is reported, then fatal)
        try:
            config = settings.serving()
            logs.configure(config.log_level, config.log_format)
        except settings.SettingsError:
            logs.configure(logging.INFO, logs.TEXT)
        fix = missing_library(error)
        where = f"{module}.py cannot be imported"
        if fix is not None:
            log.error("%s: %s", where, fix)
        else:
            log.error("%s: %s: %s (fix it, then rebuild the image)\n%s", where, type(error).__name__, error,
                      "".join(_own_frames(error)).rstrip())
        sys.exit(APP_LOAD_ERROR)


def _own_frames(error: BaseException) -> list[str]:
    """The traceback without the import machinery's and gunicorn's frames: the fork's code only."""
    shown = traceback.TracebackException.from_exception(error)
    shown.stack = traceback.StackSummary.from_list(
        [frame for frame in shown.stack
         if not frame.filename.startswith(("<frozen", _IMPORTLIB)) and frame.filename != __file__])
    return list(shown.format())


def _text(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def create_app(hooks: Hooks, config: settings.Serving | None = None,
               paths: settings.Paths | None = None) -> Flask:
    config = config or settings.serving()
    paths = paths or settings.paths()
    logs.configure(config.log_level, config.log_format)
    record = metrics.recorder()
    if config.default_accept not in hooks.accept_types:
        raise settings.SettingsError(
            f"{settings.DEFAULT_ACCEPT}={config.default_accept!r} is not one of {', '.join(hooks.accept_types)}"
        )
    if config.multi_model:  # models arrive at run time through /models (multimodel/routes.py)
        loaded = LoadedModel(error="this is a multi-model endpoint: invoke POST /models/<name>/invoke")
    else:
        loaded = load_model(hooks, paths.model, threads=config.threads, model_format=config.model_format)
        if not loaded.ready:
            log.error("/ping will answer 503 and /invocations refuse until a loadable model is in %s", paths.model)
        record.model_state(loaded.ready)

    app = Flask("sagemaker_byo")
    app.url_map.merge_slashes = False  # "/models//invoke" is no route, not a redirect to another
    app.config["MAX_CONTENT_LENGTH"] = None  # the limit is ours, with our message
    app.extensions["sagemaker_model"] = loaded
    app.wsgi_app = metrics.instrument(app.wsgi_app, record)

    @app.get("/ping")
    def ping() -> Response:
        if loaded.ready or config.multi_model:
            return Response(status=200)
        return _text("the model is not loaded; the server log says why", 503)

    @app.post("/invocations")
    def invocations() -> Response:
        current = request._get_current_object()  # one lookup of the request, not one per use
        length = current.content_length
        if length is not None and length > config.max_payload_bytes:
            raise PayloadTooLarge(f"the body is larger than the limit of {config.max_payload_mb} MB")
        environ = current.environ  # the WSGI names of Content-Type, Accept and the custom attributes
        invocation = begin(hooks, loaded, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"), config,
                           environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"), logs.inference_id(environ))
        if streams(invocation, length, config):
            answers = invoke_in_chunks(hooks, loaded, current.stream, length, invocation, config)
            return Response(iter(answers), status=200, content_type=invocation.accept,
                            headers={"Content-Length": str(answers.size)}, direct_passthrough=True)
        output = answer_whole(hooks, loaded, current.get_data(cache=False), invocation, config)
        return Response(output, status=200, content_type=invocation.accept)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        body = {
            "MaxConcurrentTransforms": config.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": config.max_payload_mb,
        }
        return Response(json.dumps(body), status=200, mimetype="application/json")

    if config.multi_model:
        from .multimodel import routes
        routes.add_routes(app, hooks, config)

    @app.get("/metrics")
    def scrape() -> Response:
        # Behind nginx, serve's own scrape server answers /metrics (it never waits for a busy
        # worker); this route answers when gunicorn binds the port itself (serve --no-nginx).
        if not config.metrics:
            return _text(f"metrics are turned off ({settings.METRICS}=false)", 404)
        models = app.extensions["sagemaker_models"].registry if config.multi_model else None
        return Response(metrics.exposition(record.folder, models), status=200,
                        content_type=metrics.CONTENT_TYPE)

    @app.errorhandler(HTTPError)
    def http_error(error: HTTPError) -> Response:
        # nginx logs successful invocations; a refused one is logged here, once, with its reason.
        level = logging.ERROR if error.status >= 500 else logging.WARNING
        log.log(level, "%s %s -> %d: %s", request.method, request.path, error.status, error.message,
                extra=logs.outcome(error.status))
        return _text(error.message, error.status)

    @app.errorhandler(WerkzeugHTTPException)
    def werkzeug_error(error: WerkzeugHTTPException) -> Response:
        if error.code == 404:
            return _text(f"no such route; this server answers {config.routes}", 404)
        if error.code == 405:  # the path may hold a model name the client chose: quoted, cut short
            return _text(f"{request.method} is not allowed on {quoted(request.path, 80)}", 405)
        return _text(f"{error.name}: {error.description}", error.code or 400)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path, extra=logs.outcome(500))
        return _text("internal error in the inference code; the server log has the details", 500)

    return app
