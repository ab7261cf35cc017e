"""The server's log lines: today's text, or one JSON object per line (SAGEMAKER_CONTAINER_LOG_FORMAT=json)
for CloudWatch Logs Insights, and the inference id in every line a request causes.

A request's context (its inference id, route and start) is held in a context variable from the
moment the app receives it (`request_context`) to its answer; the formatters add it to every
record logged meanwhile, whichever logger logs it (the app's warning of a refused request, a
hook's traceback, a library's warning).

Only the standard library: `serve` and gunicorn's configuration import this before the app.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

TEXT, JSON = "text", "json"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Where SageMaker names the request, in the order looked at (WSGI names). nginx puts its own
# request id in the first when none came, so the access line and the app's lines agree.
ID_HEADERS = ("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID", "HTTP_X_AMZN_REQUESTID")
MAX_ID = 128  # characters of an id kept: it comes from the client


@dataclass(frozen=True)
class RequestContext:
    inference_id: str | None
    route: str
    started: float  # time.perf_counter() when the app received it

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request", default=None)


def current() -> RequestContext | None:
    """The request this thread is answering, if any."""
    return _current.get()


def inference_id(environ: dict) -> str | None:
    """The id SageMaker (or nginx, for a request that came without one) gave this request."""
    for name in ID_HEADERS:
        value = environ.get(name)
        if value:
            return value[:MAX_ID] if value.isprintable() else value[:MAX_ID].encode("unicode_escape").decode()
    return None


@contextmanager
def request_context(environ: dict, route: str, started: float) -> Iterator[RequestContext]:
    context = RequestContext(inference_id(environ), route, started)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def outcome(status: int) -> dict:
    """`extra` for the line that ends a request: its status and how long it took so far."""
    context = _current.get()
    return {"status": status, "duration_s": round(context.elapsed(), 6) if context is not None else None}


class TextFormatter(logging.Formatter):
    """Today's text line, with ` inference_id=...` on the lines a request causes."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        context = _current.get()
        if context is not None and context.inference_id:
            line += f" inference_id={context.inference_id}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and for a request's lines its
    inference_id and route, with status and duration_s where the line knows them. A traceback
    is the `exception` field, in the same line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _current.get()
        if context is not None:
            entry["inference_id"] = context.inference_id
            entry["route"] = context.route
        for name in ("status", "duration_s"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == JSON else TextFormatter()


def configure(level: int, log_format: str, stream=None) -> None:
    """The root logger writes through our formatter: a handler of its own when none is set yet,
    or gunicorn's (set from gunicorn_conf.logconfig) as it is."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(formatter(log_format))
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a log line too, in the chosen format


# nginx's access line in each format. The text one is today's, with the id at the end.
NGINX_TEXT = "'$remote_addr \"$request\" $status $body_bytes_sent ${request_time}s inference_id=$inference_id'"
NGINX_JSON = ("escape=json '{\"time\":\"$time_iso8601\",\"level\":\"INFO\",\"logger\":\"nginx.access\","
              "\"message\":\"$request_method $request_uri\",\"inference_id\":\"$inference_id\",\"route\":\"$uri\","
              "\"status\":$status,\"duration_s\":$request_time,\"bytes\":$body_bytes_sent,"
              "\"remote_addr\":\"$remote_addr\"}'")


def nginx_log_format(log_format: str) -> str:
    return NGINX_JSON if log_format == JSON else NGINX_TEXT
