"""Prometheus metrics: what the workers record, and GET /metrics, which SageMaker scrapes.

gunicorn's workers are separate processes, so the metrics use prometheus_client's multiprocess
mode: `serve` gives each server start a fresh, empty folder (PROMETHEUS_MULTIPROC_DIR, under its
runtime folder) before gunicorn starts; every process writes its counts to memory-mapped files of
its own there, in prometheus_client's format (`Recorder`: a count is a write to shared memory, no
system call, no lock between workers), and a scrape adds the files up with prometheus_client's
MultiProcessCollector. A worker that dies leaves its files behind, so counts survive its restart;
gunicorn's `child_exit` hook (gunicorn_conf.py) drops only its live gauges. A hook's own
prometheus_client metrics land in the same folder and are scraped with ours.

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

import atexit
import bisect
import errno
import logging
import math
import os
import shutil
import socketserver
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.utils import floatToGoString

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


# Our files carry this after the pid: a hook's own prometheus_client metrics, written through
# prometheus_client's own files in the same folder, never share a file with ours.
TAG = "byo"
HELP = {
    "requests": "Requests the workers answered, by route, method and status code",
    "requests_in_flight": "Requests the workers are answering now",
    "request_duration_seconds": "Time to answer a request in the worker, by route",
    "stage_duration_seconds": "Time in each inference hook (per body, or per chunk of a body scored in chunks)",
    "request_rows": "Rows per answered invocation",
    "rows_answered": "Rows answered by invocations",
    "chunked_bodies": "Invocation bodies scored a chunk at a time",
    "model_load_duration_seconds": "Time to load a model (model_fn and its input contract)",
    "model_loaded": "1 once the model of a single-model endpoint is loaded, 0 if it could not be",
    "worker_restarts": "gunicorn workers that exited while the server ran (crash, kill, timeout) and were replaced",
    "model_loads": "Loads asked of a multi-model endpoint (POST /models), by outcome",
    "model_unloads": "Models unloaded from a multi-model endpoint",
}


_pack_double = struct.Struct("d").pack_into


class _Series:
    """One time series in this process's file: its running value, written through at each change.

    Written in place at the series' position in the file's mmap, as MmapedDict.write_value
    writes it, without its key lookup and packing of a fresh timestamp (always 0 here): a
    request writes 14 values. The mmap is looked up at each write because the file replaces
    it when a new series makes it grow. prometheus_client is pinned exactly for these two
    attributes (`_m`, `_positions`); tests/unit/serving/test_metrics.py reads what is written."""

    __slots__ = ("file", "position", "value")

    def __init__(self, file: MmapedDict, key: str) -> None:
        file.write_value(key, 0.0, 0.0)
        self.file, self.position, self.value = file, file._positions[key], 0.0  # noqa: SLF001

    def add(self, amount: float) -> None:
        self.value += amount
        _pack_double(self.file._m, self.position, self.value)  # noqa: SLF001

    def set(self, value: float) -> None:
        self.value = value
        _pack_double(self.file._m, self.position, value)  # noqa: SLF001


class _Histogram:
    """A histogram's sum and buckets (each bucket counts its own range; the scrape accumulates them)."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, series, name: str, labels: dict[str, str], bounds: tuple[float, ...]) -> None:
        self.bounds = (*bounds, math.inf)
        self.sum = series("histogram", name, name + "_sum", labels)
        self.buckets = [series("histogram", name, name + "_bucket", {**labels, "le": floatToGoString(b)})
                        for b in self.bounds]

    def observe(self, value: float) -> None:
        self.sum.add(value)
        self.buckets[bisect.bisect_left(self.bounds, value)].add(1.0)


class Recorder:
    """The metrics one process records, in files of its own in `folder`, in prometheus_client's
    multiprocess format (its MmapedDict and keys), which its MultiProcessCollector adds up.

    Written directly rather than through prometheus_client's Counter and Histogram: a request
    records 14 values, and their layers of locks and checks cost about 15 us a request against
    about 5 us for these writes (bench/request_path.py --stages; bench/NOTES.md), the first
    beyond the 3 % a 1-row request may spend on metrics. The files are the same, so the scrape
    is prometheus_client's.
    """

    enabled = True

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._forget()
        os.register_at_fork(after_in_child=self._forget)  # a worker writes files of its own

    def _forget(self) -> None:
        self._files: dict[str, MmapedDict] = {}
        self._series: dict[tuple, _Series | _Histogram] = {}
        self._requests: dict[tuple[str, str, str], _Series] = {}
        self._durations: dict[str, _Histogram] = {}
        self._hot: tuple | None = None

    # -- this process's series ------------------------------------------------------------------
    def _file(self, kind: str) -> MmapedDict:
        file = self._files.get(kind)
        if file is None:
            file = self._files[kind] = MmapedDict(str(self.folder / f"{kind}_{os.getpid()}-{TAG}.db"))
        return file

    def _new_series(self, kind: str, metric: str, name: str, labels: dict[str, str]) -> _Series:
        key = mmap_key(metric, name, list(labels), list(labels.values()), HELP[metric[len(PREFIX):]])
        return _Series(self._file(kind), key)

    def _counter(self, short: str, **labels: str) -> _Series:
        ident = ("counter", short, tuple(labels.items()))
        found = self._series.get(ident)
        if found is None:
            found = self._series[ident] = self._new_series("counter", PREFIX + short, PREFIX + short + "_total", labels)
        return found

    def _gauge(self, short: str, mode: str) -> _Series:
        ident = ("gauge", short)
        found = self._series.get(ident)
        if found is None:
            found = self._series[ident] = self._new_series(f"gauge_{mode}", PREFIX + short, PREFIX + short, {})
        return found

    def _histogram(self, short: str, bounds: tuple[float, ...], **labels: str) -> _Histogram:
        ident = ("histogram", short, tuple(labels.items()))
        found = self._series.get(ident)
        if found is None:
            found = self._series[ident] = _Histogram(self._new_series, PREFIX + short, labels, bounds)
        return found

    def _hot_series(self) -> tuple:
        """What every invocation writes, looked up once per process."""
        if self._hot is None:
            self._hot = (self._gauge("requests_in_flight", "livesum"),
                         *(self._histogram("stage_duration_seconds", DURATION_BUCKETS, stage=s) for s in STAGES),
                         self._histogram("request_rows", ROW_BUCKETS), self._counter("rows_answered"))
        return self._hot

    # -- the request path -------------------------------------------------------------------------
    def request_started(self) -> None:
        self._hot_series()[0].add(1.0)

    def request_finished(self, route: str, method: str, status: str, seconds: float) -> None:
        key = (route, method, status)
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = self._counter("requests", route=route, method=method, status=status)
        requests.add(1.0)
        duration = self._durations.get(route)
        if duration is None:
            duration = self._durations[route] = self._histogram("request_duration_seconds", DURATION_BUCKETS,
                                                                route=route)
        duration.observe(seconds)
        self._hot_series()[0].add(-1.0)

    def stages_timed(self, input_fn: float, predict_fn: float, output_fn: float) -> None:
        _, decode, predict, output, _, _ = self._hot_series()
        decode.observe(input_fn)
        predict.observe(predict_fn)
        output.observe(output_fn)

    def answered(self, rows: int | None) -> None:
        if rows is not None:
            hot = self._hot_series()
            hot[4].observe(rows)
            hot[5].add(rows)

    def chunked_body(self) -> None:
        self._counter("chunked_bodies").add(1.0)

    # -- models and workers -------------------------------------------------------------------
    def model_load(self, seconds: float, ready: bool) -> None:
        if ready:
            self._histogram("model_load_duration_seconds", LOAD_BUCKETS).observe(seconds)

    def model_state(self, ready: bool) -> None:
        self._gauge("model_loaded", "max").set(1.0 if ready else 0.0)

    def load_outcome(self, outcome: str) -> None:
        self._counter("model_loads", outcome=outcome).add(1.0)

    def unloaded(self) -> None:
        self._counter("model_unloads").add(1.0)

    def worker_restarted(self) -> None:
        self._counter("worker_restarts").add(1.0)


def mark_process_dead(pid: int, folder: Path) -> None:
    """A worker is gone: its live gauges (requests in flight) go with it; its counts stay."""
    for path in Path(folder).glob(f"gauge_live*_{pid}-{TAG}.db"):
        path.unlink(missing_ok=True)
    multiprocess.mark_process_dead(pid, str(folder))  # a hook's own prometheus_client gauges


class NoRecorder:
    """Recording turned off (MODEL_SERVER_METRICS=false): every call does nothing."""

    enabled = False

    def __getattr__(self, _name: str):
        return _nothing


def _nothing(*_args, **_kwargs) -> None:
    return None


_recorder: Recorder | NoRecorder | None = None


def recorder() -> Recorder | NoRecorder:
    """This process's recorder, made on first use from the environment `serve` set: metrics on
    or off, and the folder of every process's files (an app run without `serve` gets a private
    one, shared by the workers a server forks from it)."""
    global _recorder  # noqa: PLW0603 - one per process, as prometheus_client's own registry
    if _recorder is None:
        if not settings.metrics_enabled():
            _recorder = NoRecorder()
        else:
            _recorder = Recorder(folder_from_environment() or _private_folder())
    return _recorder


def _private_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="sagemaker-byo-metrics-"))
    creator = os.getpid()
    atexit.register(lambda: os.getpid() == creator and shutil.rmtree(folder, ignore_errors=True))
    return folder


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


def exposition(folder: Path, models=None) -> bytes:
    """The Prometheus text of every process's metrics in `folder`, with the figures read now."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
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
