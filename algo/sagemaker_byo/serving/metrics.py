"""Prometheus metrics: what the workers record, and GET /metrics, which SageMaker scrapes.

gunicorn's workers are separate processes, so the metrics use prometheus_client's multiprocess
mode: `serve` gives each server start a fresh, empty folder (PROMETHEUS_MULTIPROC_DIR, under its
runtime folder) before gunicorn starts; every process writes its counts to its own memory-mapped
files there (an increment is a write to shared memory, no system call, no lock between
workers), and a scrape adds the files up. A worker that dies leaves its files behind, so counts
survive its restart; gunicorn's `child_exit` hook (gunicorn_conf.py) drops only its live gauges.

A scrape is answered outside the workers: `serve` runs `ScrapeServer`, a thread reading that folder
on a unix socket, and nginx sends GET /metrics to it, so SageMaker's scrape never queues behind a
busy sync worker (as /ping, which nginx answers itself). With `serve --no-nginx` the app answers
/metrics itself from the same folder, through a worker like any route.

Labels are of bounded cardinality: a route is one of ROUTES (never the raw path or a model name),
a method one of METHODS, a status one the server answers.

Only the standard library, prometheus_client and the modules `serve` imports already: `serve`
imports this without the model stack.
"""

from __future__ import annotations

import errno
import logging
import os
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .. import resources, settings
from . import logs

log = logging.getLogger("serve")

PREFIX = "sagemaker_byo_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for the folder
# Seconds, from a 1-row request (about 100 us) to an hour-long asynchronous one.
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
ROW_BUCKETS = (1, 2, 5, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

# Route labels: the routes of SageMaker's contract, with a model's name as a placeholder.
ROUTES = {"/ping": "/ping", "/invocations": "/invocations", "/execution-parameters": "/execution-parameters",
          "/models": "/models", "/metrics": "/metrics"}
MODEL = "/models/{name}"
MODEL_INVOKE = "/models/{name}/invoke"
OTHER = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
STAGES = ("input_fn", "predict_fn", "output_fn")


def route(path: str) -> str:
    """The route label of a request path: one of ROUTES, MODEL, MODEL_INVOKE or OTHER."""
    known = ROUTES.get(path)
    if known is not None:
        return known
    if path.startswith("/models/"):
        rest = path[len("/models/"):]
        if rest.endswith("/invoke"):
            rest = rest[:-len("/invoke")]
            return MODEL_INVOKE if rest and "/" not in rest else OTHER
        return MODEL if rest and "/" not in rest else OTHER
    return OTHER


class Recorder:
    """The metrics one process records, created once per process (`recorder()`)."""

    enabled = True

    def __init__(self, registry=None) -> None:
        kw = {} if registry is None else {"registry": registry}
        self.requests = Counter(PREFIX + "requests", "Requests answered by the model server, by route, "
                                "method and status code", ["route", "method", "status"], **kw)
        self.in_flight = Gauge(PREFIX + "requests_in_flight", "Requests the workers are answering now",
                               multiprocess_mode="livesum", **kw)
        self.duration = Histogram(PREFIX + "request_duration_seconds", "Time to answer a request in the "
                                  "worker, by route", ["route"], buckets=DURATION_BUCKETS, **kw)
        self.stages = Histogram(PREFIX + "stage_duration_seconds", "Time spent in each inference hook "
                                "(one observation per body, or per chunk of a body scored in chunks)",
                                ["stage"], buckets=DURATION_BUCKETS, **kw)
        self.rows = Histogram(PREFIX + "request_rows", "Rows per answered invocation", buckets=ROW_BUCKETS, **kw)
        self.rows_answered = Counter(PREFIX + "rows_answered", "Rows answered by invocations", **kw)
        self.chunked = Counter(PREFIX + "chunked_bodies", "Invocation bodies scored a chunk at a time", **kw)
        self.load_duration = Histogram(PREFIX + "model_load_duration_seconds", "Time to load a model "
                                       "(model_fn and the input contract)", buckets=LOAD_BUCKETS, **kw)
        self.model_loaded = Gauge(PREFIX + "model_loaded", "1 once the model is loaded, 0 if it could not be "
                                  "(single-model endpoints)", multiprocess_mode="max", **kw)
        self.worker_restarts = Counter(PREFIX + "worker_restarts", "gunicorn workers that exited while "
                                       "serving (crash, kill, timeout) and were replaced", **kw)
        self.model_loads = Counter(PREFIX + "model_loads", "Loads asked of a multi-model endpoint (POST /models), "
                                   "by outcome", ["outcome"], **kw)
        self.model_unloads = Counter(PREFIX + "model_unloads", "Models unloaded from a multi-model endpoint", **kw)
        self._request_children: dict[tuple[str, str, str], object] = {}
        self._duration_children: dict[str, object] = {}
        self._input, self._predict, self._output = (self.stages.labels(s) for s in STAGES)

    # -- the request path: each call a few writes to shared memory ----------------------------
    def request_started(self) -> None:
        self.in_flight.inc()

    def request_finished(self, route: str, method: str, status: str, seconds: float) -> None:
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(*key)
        child.inc()
        duration = self._duration_children.get(route)
        if duration is None:
            duration = self._duration_children[route] = self.duration.labels(route)
        duration.observe(seconds)
        self.in_flight.dec()

    def stages_timed(self, input_fn: float, predict_fn: float, output_fn: float) -> None:
        self._input.observe(input_fn)
        self._predict.observe(predict_fn)
        self._output.observe(output_fn)

    def answered(self, rows: int | None) -> None:
        if rows is not None:
            self.rows.observe(rows)
            self.rows_answered.inc(rows)

    def chunked_body(self) -> None:
        self.chunked.inc()

    # -- models and workers -------------------------------------------------------------------
    def model_load(self, seconds: float, ready: bool) -> None:
        if ready:
            self.load_duration.observe(seconds)

    def model_state(self, ready: bool) -> None:
        self.model_loaded.set(1 if ready else 0)

    def load_outcome(self, outcome: str) -> None:
        self.model_loads.labels(outcome).inc()

    def unloaded(self) -> None:
        self.model_unloads.inc()

    def worker_restarted(self) -> None:
        self.worker_restarts.inc()


class NoRecorder:
    """Recording turned off (MODEL_SERVER_METRICS=false): every call does nothing."""

    enabled = False

    def __getattr__(self, _name: str):
        return _nothing


def _nothing(*_args, **_kwargs) -> None:
    return None


_recorder: Recorder | NoRecorder | None = None


def recorder() -> Recorder | NoRecorder:
    """This process's recorder, made on first use from the environment `serve` set (metrics on
    or off, and the multiprocess folder, which prometheus_client reads when it makes a metric)."""
    global _recorder  # noqa: PLW0603 - one per process, as prometheus_client's own registry
    if _recorder is None:
        _recorder = Recorder() if settings.metrics_enabled() else NoRecorder()
    return _recorder


def instrument(wsgi_app, record: Recorder | NoRecorder):
    """The app with every request counted and timed, and its context (inference id, route) held
    for the log lines it causes (logs.request_context)."""
    clock = time.perf_counter

    def instrumented(environ, start_response):
        started = clock()
        path_route = route(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "")
        status = "500"  # unless the app starts a response

        def capture(line, headers, exc_info=None):
            nonlocal status
            status = line[:3]
            return start_response(line, headers, exc_info)

        record.request_started()
        try:
            with logs.request_context(environ, path_route, started):
                return wsgi_app(environ, capture)
        finally:
            record.request_finished(path_route, method if method in METHODS else OTHER, status, clock() - started)

    return instrumented


# -- the scrape ---------------------------------------------------------------------------------
class ServerCollector:
    """Figures read at scrape time rather than recorded: the container's memory and, on a
    multi-model endpoint, the models the registry lists."""

    def __init__(self, models=None) -> None:
        self.models = models  # registry.Registry of a multi-model endpoint, else None

    def collect(self):
        used, limit = resources.memory_used(), resources.memory()
        yield GaugeMetricFamily(PREFIX + "memory_used_bytes", "Memory the container uses now", value=used.value)
        yield GaugeMetricFamily(PREFIX + "memory_limit_bytes", f"Memory the container may use ({limit.source})",
                                value=limit.value)
        if self.models is not None:
            from .multimodel import registry as registries  # noqa: PLC0415 - multi-model only
            ready = [e for e in self.models.snapshot().values() if e.state == registries.READY]
            yield GaugeMetricFamily(PREFIX + "models_loaded", "Models a multi-model endpoint has loaded",
                                    value=len(ready))
            yield GaugeMetricFamily(PREFIX + "models_memory_bytes", "Memory the loaded models took when loaded "
                                    "(their loading worker's growth)", value=sum(e.memory for e in ready))


class _ThisProcess:
    """The default registry's metrics (this process's own), as one collector of another registry."""

    def collect(self):
        from prometheus_client import REGISTRY  # noqa: PLC0415
        yield from REGISTRY.collect()


def exposition(folder: Path | None, models=None) -> bytes:
    """The Prometheus text of every process's metrics in `folder` (multiprocess mode), or of this
    process's alone when there is none, with the figures read now."""
    registry = CollectorRegistry()
    if folder is not None:
        multiprocess.MultiProcessCollector(registry, path=str(folder))
    else:
        registry.register(_ThisProcess())
    registry.register(ServerCollector(models))
    return generate_latest(registry)


# The classic text format every scraper reads (our names need none of 1.0.0's escaping).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def folder_from_environment(env: dict[str, str] | None = None) -> Path | None:
    """The multiprocess folder `serve` gave gunicorn, or None (an app run alone)."""
    env = os.environ if env is None else env
    value = env.get(MULTIPROC_ENV)
    return Path(value) if value else None


# -- the scrape server, in `serve` --------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    folder: Path
    models = None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        try:
            status, text, media_type = 200, exposition(self.folder, self.models), CONTENT_TYPE
        except Exception:  # noqa: BLE001 - logged; the scraper gets no traceback
            log.exception("the metrics scrape failed")
            status, text, media_type = 500, b"internal error reading the metrics; the server log has the details\n", \
                "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if body:
            self.wfile.write(text)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - scraped every minute: not logged
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


class ScrapeServer:
    """GET /metrics from the multiprocess folder, on a unix socket, in a thread of `serve`."""

    def __init__(self, folder: Path, socket_path: Path, models=None) -> None:
        try:
            socket_path.unlink()
        except OSError as error:
            if error.errno != errno.ENOENT:
                raise
        handler = type("Handler", (_Handler,), {"folder": folder, "models": models})
        self.server = _UnixServer(str(socket_path), handler)
        socket_path.chmod(0o666)  # nginx's workers may run as another user
        self.socket_path = socket_path
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> ScrapeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
